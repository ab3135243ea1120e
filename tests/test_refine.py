"""The refine nets: the `performance` representation, the refine family's corruption, targets and
masked losses, a refine model trained by `python -m trainer.task --model refine` that learns to
play the top voice louder and to undo jittered durations, its exported `refine` signature, and
`trainer.generate --refine` / `python -m evaluation` with it.

Everything is real: MIDI files written with mido and read back by the readers, datasets built by
`preprocessing.dataset`, a tiny refine model trained in this process (`trainer.task.main`) and
the session zoo's lstm as the composer, their SavedModels loaded with `tf.saved_model.load`,
and the CLIs run in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from evaluation import evaluate
from preprocessing import dataset, performance
from preprocessing.dataset import Settings
from preprocessing.piece import InputError, from_notes
from preprocessing.readers import read_file
from serving import contract
from serving.composer import Composer
from serving.errors import error_message
from tests.conftest import BASS, MELODY, make_piece, write_midi_file
from tests.zoo import run_main
from trainer import data as data_lib
from trainer import generate, task
from trainer.config import Config
from trainer.models import MODELS, refine

SEQ_LEN = 32
TOP, OTHER = 100, 40  # the velocities the training pieces are played with


def chorale(seed: int) -> list:
    """Three voices on a steady quarter-note beat (the bass in half notes); the top note of
    every onset is played at velocity 100, the others at 40. The soprano rests now and then, so
    the top voice is sometimes the alto."""
    rng = np.random.default_rng(seed)
    scale = [0, 2, 4, 5, 7, 9, 11]
    voices = [[], [], []]
    for beat in range(32):
        if rng.random() > 0.2:
            voices[0].append([72 + scale[rng.integers(7)], beat, 1])
        voices[1].append([60 + scale[rng.integers(7)], beat, 1])
        if beat % 2 == 0:
            voices[2].append([43 + scale[rng.integers(7)], beat, 2])
    for beat in range(32):
        sounding = [n for v in voices for n in v if n[1] == beat]
        top = max(n[0] for n in sounding)
        for n in sounding:
            n.append(TOP if n[0] == top else OTHER)
    return [[tuple(n) for n in v] for v in voices]


# --- the performance representation ---------------------------------------------------------------

def test_piece_to_rows_sorts_by_onset_then_pitch_down_and_clips():
    piece = make_piece([(60, 0, 1, 70), (67, 0, 0.5, 90), (64, 0, 2, 50), (72, 1.0, 20, 127),
                        (55, 0.5, 0.1, 0)])
    rows = performance.piece_to_rows(piece)
    assert rows.dtype == np.int32 and rows.shape == (5, 4)
    assert rows.tolist() == [[67, 0, 2, 90], [64, 0, 8, 50], [60, 0, 4, 70],
                             [55, 2, 1, 1],  # at least one step, velocity at least 1
                             [72, 4, 32, 127]]  # at most max_duration steps
    short = performance.piece_to_rows(piece, steps_per_quarter=2, max_duration=3)
    assert short[:, 1].tolist() == [0, 0, 0, 1, 2] and short[:, 2].tolist() == [1, 3, 2, 1, 3]
    empty = performance.piece_to_rows(from_notes([]))
    assert empty.shape == (0, 4) and empty.dtype == np.int32


def test_rows_to_piece_round_trips_on_the_grid():
    rows = performance.piece_to_rows(from_notes(
        [n for v in chorale(5) for n in v]))
    piece = performance.rows_to_piece(rows, qpm=90.0, name="mine")
    assert (piece.name, piece.qpm, len(piece)) == ("mine", 90.0, len(rows))
    np.testing.assert_array_equal(performance.piece_to_rows(piece), rows)
    # on a finer grid the times are halved
    half = performance.rows_to_piece(rows, steps_per_quarter=8)
    assert half.end == pytest.approx(piece.end / 2)
    np.testing.assert_array_equal(performance.piece_to_rows(half, 8), rows)


def test_the_performance_dataset_holds_every_pieces_rows(tmp_path):
    paths = [write_midi_file(tmp_path / "midi" / f"p{k}.mid", chorale(k)) for k in range(3)]
    summary = dataset.build([str(tmp_path / "midi")], tmp_path / "ds",
                            Settings(representation="performance", validation=0.0, test=0.0),
                            cache_dir=tmp_path / "cache", progress=False)
    assert summary["pieces"] == {"train": 3, "validation": 0, "test": 0}
    assert not (tmp_path / "ds" / "vocab.json").exists()
    spec = data_lib.spec_of(tmp_path / "ds")
    assert spec == data_lib.DataSpec("performance", 4, max_duration=32)
    items = dataset.load_split(tmp_path / "ds", "train")
    expected = sorted((performance.piece_to_rows(read_file(p)[0]) for p in paths),
                      key=lambda r: r.tobytes())
    assert len(items) == 3
    for got, want in zip(sorted(items, key=lambda r: r.tobytes()), expected):
        assert got.dtype == np.int32 and got.shape[1] == 4
        np.testing.assert_array_equal(got, want)
    # the velocities of the MIDI files come through
    assert set(np.concatenate(items)[:, 3].tolist()) == {TOP, OTHER}


# --- the refine family's units --------------------------------------------------------------------

def test_corrupt_changes_about_share_of_the_notes_and_keeps_padding():
    rng = np.random.default_rng(0)
    durations = rng.choice([4, 8, 12], (200, 64)).astype(np.int32)
    durations[:, :10] = 0  # padding
    out = refine.corrupt(durations, 0.3, 32, np.random.default_rng(1))
    assert out.dtype == np.int32 and out.shape == durations.shape
    assert (out[:, :10] == 0).all()
    notes = out[:, 10:]
    assert notes.min() >= 1 and notes.max() <= 32
    changed = notes != durations[:, 10:]
    assert changed.mean() == pytest.approx(0.3, abs=0.02)
    # three in four changed notes are nudged by 1-2 steps
    nudged = np.abs(notes - durations[:, 10:])[changed] <= 2
    assert 0.7 < nudged.mean() < 0.85
    # the same generator state gives the same corruption; share 0 and 1
    np.testing.assert_array_equal(out, refine.corrupt(durations, 0.3, 32,
                                                      np.random.default_rng(1)))
    np.testing.assert_array_equal(refine.corrupt(durations, 0.0, 32, rng), durations)
    everything = refine.corrupt(durations, 1.0, 32, rng)
    assert (everything[:, 10:] != durations[:, 10:]).mean() > 0.95
    assert (everything[:, :10] == 0).all()


def test_corrupt_stays_within_one_and_max_duration():
    durations = np.array([[1, 1, 2, 31, 32, 32, 0]] * 500, np.int32)
    out = refine.corrupt(durations, 1.0, 32, np.random.default_rng(2))
    assert out[:, :6].min() == 1 and out[:, :6].max() == 32
    assert (out[:, 6] == 0).all()


@pytest.fixture(scope="module")
def performance_data(tmp_path_factory):
    """A performance dataset of two short pieces (shorter than a window: padded) and a long one."""
    root = tmp_path_factory.mktemp("perf-data")
    write_midi_file(root / "midi" / "long.mid", chorale(1))
    write_midi_file(root / "midi" / "short.mid", [[(72, 0, 1, 90), (74, 1, 2, 60)],
                                                  [(48, 0, 3, 30)]])
    folder = root / "ds"
    dataset.build([str(root / "midi")], folder,
                  Settings(representation="performance", validation=0.0, test=0.0),
                  cache_dir=root / "cache", progress=False)
    return folder, data_lib.spec_of(folder)


def test_make_arrays_targets_and_jittered_inputs(performance_data):
    folder, spec = performance_data
    config = Config(model="refine", seq_len=8, hparams={"corrupt": 0.5}, export_dir="")
    x, y = MODELS["refine"].arrays(folder, "train", spec, config)
    rows = data_lib.windows(dataset.load_split(folder, "train"), 8)
    assert set(x) == {"pitch", "onset", "duration"} and set(y) == {"velocity", "duration"}
    for name in x:
        assert x[name].dtype == np.int32 and x[name].shape == rows.shape[:2]
    np.testing.assert_array_equal(x["pitch"], rows[..., 0])
    np.testing.assert_array_equal(x["onset"], rows[..., 1])
    pad = rows[..., 2] == 0
    assert pad.any() and (~pad).any()
    assert y["velocity"].dtype == np.float32 and y["duration"].dtype == np.int32
    np.testing.assert_allclose(y["velocity"], np.where(pad, -1.0, rows[..., 3] / 127.0),
                               rtol=1e-6)
    np.testing.assert_array_equal(y["duration"], rows[..., 2])
    assert (x["duration"][pad] == 0).all() and (y["duration"][pad] == 0).all()
    jittered = x["duration"][~pad] != rows[..., 2][~pad]
    assert 0.3 < jittered.mean() < 0.7
    # seeded by the config: the same arrays again, other ones with another seed
    again, _ = MODELS["refine"].arrays(folder, "train", spec, config)
    np.testing.assert_array_equal(again["duration"], x["duration"])
    other, _ = MODELS["refine"].arrays(folder, "train", spec,
                                       Config(model="refine", seq_len=8, seed=9, export_dir=""))
    assert not np.array_equal(other["duration"], x["duration"])


def test_masked_mse_ignores_padding():
    y_true = np.array([[0.5, 0.2, -1.0], [0.1, -1.0, -1.0]], np.float32)
    y_pred = np.array([[0.7, 0.2, 0.9], [0.4, 0.0, 0.3]], np.float32)[..., None]
    got = refine.masked_mse(y_true, y_pred).numpy()
    np.testing.assert_allclose(got, [0.2**2 / 2, 0.3**2], rtol=1e-5)
    # more padded notes with any prediction: the same values
    more_true = np.concatenate([y_true, -np.ones((2, 4), np.float32)], 1)
    more_pred = np.concatenate([y_pred, np.full((2, 4, 1), 0.8, np.float32)], 1)
    np.testing.assert_allclose(refine.masked_mse(more_true, more_pred).numpy(), got, rtol=1e-6)
    # a window of padding only costs nothing
    assert float(refine.masked_mse(-np.ones((1, 3), np.float32),
                                   np.ones((1, 3, 1), np.float32))[0]) == 0.0


def test_masked_crossentropy_ignores_padding():
    rng = np.random.default_rng(3)
    y_true = np.array([[4, 8, 0], [2, 0, 0]], np.int32)
    logits = rng.normal(0, 2, (2, 3, 33)).astype(np.float32)
    got = refine.masked_crossentropy(y_true, logits).numpy()
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = [-(log_p[0, 0, 4] + log_p[0, 1, 8]) / 2, -log_p[1, 0, 2]]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    more_true = np.concatenate([y_true, np.zeros((2, 5), np.int32)], 1)
    more_logits = np.concatenate([logits, rng.normal(0, 5, (2, 5, 33)).astype(np.float32)], 1)
    np.testing.assert_allclose(refine.masked_crossentropy(more_true, more_logits).numpy(), got,
                               rtol=1e-6)


# --- a refine model trained by trainer.task -------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refine-corpus")
    for k in range(12):
        write_midi_file(folder / f"chorale{k:02d}.mid", chorale(k))
    return folder


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """A refine model trained for 12 epochs at a high learning rate, exported and loaded back."""
    root = tmp_path_factory.mktemp("refine-job")
    rc, out, err = run_main(task.main, [
        "--model", "refine", "--data", corpus, "--epochs", 12, "--seq-len", SEQ_LEN,
        "--batch-size", 8, "--hparams", "units=16,layers=1,dense=16,learning_rate=0.01",
        "--seed", 1, "--sample-every", 0, "--job-dir", root / "job",
        "--export-dir", root / "exports"])
    assert rc == 0, err[-3000:]
    path = Path(json.loads(out.strip().splitlines()[-1])["export"])
    assert path == root / "exports" / "refine" / "1"
    loaded = tf.saved_model.load(str(path))
    return {"path": path, "loaded": loaded, "meta": Composer(loaded).metadata(),
            "job": root / "job", "refine": loaded.signatures["refine"]}


def call_refine(signature, pitch, onset, duration) -> tuple[np.ndarray, np.ndarray]:
    out = signature(pitch=tf.constant(pitch, tf.int32), onset=tf.constant(onset, tf.int32),
                    duration=tf.constant(duration, tf.int32))
    return out["velocity"].numpy(), out["duration"].numpy()


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Rows of three pieces of the same kind, never trained on, read back from MIDI files."""
    folder = tmp_path_factory.mktemp("refine-held-out")
    return [performance.piece_to_rows(read_file(write_midi_file(folder / f"h{s}.mid",
                                                                chorale(1000 + s)))[0])
            for s in range(3)]


def test_the_refine_model_plays_the_top_voice_louder(trained, held_out):
    for rows in held_out:
        velocity, _ = call_refine(trained["refine"], rows[None, :, 0], rows[None, :, 1],
                                  rows[None, :, 2])
        velocity = velocity[0]
        top = rows[:, 3] == TOP
        assert top.any() and (~top).any()
        assert velocity[top].mean() - velocity[~top].mean() > 20, velocity
        assert velocity.min() >= 1 and velocity.max() <= 127
        # closer to the data than the best constant
        constant = np.abs(np.median(rows[:, 3]) - rows[:, 3]).mean()
        assert np.abs(velocity - rows[:, 3]).mean() < constant


def test_the_refine_model_undoes_jittered_durations(trained, held_out):
    rng = np.random.default_rng(7)
    for rows in held_out:
        truth = rows[:, 2]
        jittered = refine.corrupt(truth, 0.5, 32, rng)
        _, snapped = call_refine(trained["refine"], rows[None, :, 0], rows[None, :, 1],
                                 jittered[None])
        before, after = np.mean(jittered == truth), np.mean(snapped[0] == truth)
        assert after > before + 0.2, (before, after)
        # clean durations are kept
        _, kept = call_refine(trained["refine"], rows[None, :, 0], rows[None, :, 1], truth[None])
        assert np.mean(kept[0] == truth) > 0.9


def test_the_signature_gives_what_the_keras_model_predicts(trained, held_out):
    rows = held_out[0]
    model = keras.saving.load_model(trained["job"] / "model.keras")
    out = model({"pitch": rows[None, :, 0], "onset": rows[None, :, 1],
                 "duration": rows[None, :, 2]}, training=False)
    velocity, duration = call_refine(trained["refine"], rows[None, :, 0], rows[None, :, 1],
                                     rows[None, :, 2])
    expected_velocity = np.clip(np.round(np.asarray(out["velocity"])[0, :, 0] * 127), 1, 127)
    np.testing.assert_allclose(velocity[0], expected_velocity, atol=1)
    expected_duration = np.asarray(out["duration"])[0, :, 1:].argmax(-1) + 1
    np.testing.assert_array_equal(duration[0], expected_duration)


def test_refine_signatures_and_metadata(trained):
    loaded, meta = trained["loaded"], trained["meta"]
    assert set(loaded.signatures) == {"serving_default", "refine", "metadata"}
    assert meta["model"] == "refine" and meta["representation"] == "performance"
    assert meta["inputs"] == "pitch,onset,duration"
    assert (meta["conditional"], meta["steps_per_quarter"], meta["max_duration"],
            meta["window"]) == (0, 4, 32, SEQ_LEN)
    for name in ("serving_default", "refine"):
        signature = loaded.signatures[name]
        assert set(signature.structured_input_signature[1]) == {"pitch", "onset", "duration"}
        assert set(signature.structured_outputs) == {"velocity", "duration"}


def test_padding_rows_come_back_as_zeros(trained, held_out):
    a, b = held_out[0][:20], held_out[1][:12]
    pad = np.zeros((8, 4), np.int32)
    batch = np.stack([a, np.concatenate([b, pad])])
    velocity, duration = call_refine(trained["refine"], batch[..., 0], batch[..., 1],
                                     batch[..., 2])
    assert velocity.shape == duration.shape == (2, 20)
    assert velocity.dtype == np.int32 and duration.dtype == np.int32
    assert (velocity[1, 12:] == 0).all() and (duration[1, 12:] == 0).all()
    assert velocity[:, :12].min() >= 1 and duration[:, :12].min() >= 1
    alone, _ = call_refine(trained["refine"], a[None, :, 0], a[None, :, 1], a[None, :, 2])
    np.testing.assert_array_equal(velocity[0], alone[0])  # an unpadded row is itself
    # padding is masked out of the LSTMs: the padded row's notes are refined as if alone
    b_alone, b_duration = call_refine(trained["refine"], b[None, :, 0], b[None, :, 1],
                                      b[None, :, 2])
    np.testing.assert_array_equal(velocity[1, :12], b_alone[0])
    np.testing.assert_array_equal(duration[1, :12], b_duration[0])


@pytest.mark.parametrize("field, message", [("onset", "onset: one per pitch"),
                                            ("duration", "duration: one per pitch")])
def test_mismatched_shapes_are_invalid_argument_errors(trained, field, message):
    inputs = {"pitch": [[60, 62, 64]], "onset": [[0, 4, 8]], "duration": [[4, 4, 4]]}
    inputs[field] = [[0, 4]]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        call_refine(trained["refine"], inputs["pitch"], inputs["onset"], inputs["duration"])
    assert error_message(info.value.message) == message


def test_negative_durations_are_invalid_argument_errors(trained):
    with pytest.raises(tf.errors.InvalidArgumentError, match="duration must be >= 0"):
        call_refine(trained["refine"], [[60, 62]], [[0, 4]], [[4, -1]])


# --- requests: refine_inputs / refined ------------------------------------------------------------

def test_refine_inputs_and_refined_on_a_piece(trained):
    meta = trained["meta"]
    piece = from_notes([(72, 0, 1), (60, 0, 2), (64, 0, 1.25), (74, 1, 0.75), (48, 2, 2)],
                       qpm=100.0, name="flat")
    inputs, rows = contract.refine_inputs(piece, meta)
    assert set(inputs) == {"pitch", "onset", "duration"}
    np.testing.assert_array_equal(rows, performance.piece_to_rows(piece))
    for i, name in enumerate(("pitch", "onset", "duration")):
        assert inputs[name].shape == (1, 5) and inputs[name].dtype == np.int32
        np.testing.assert_array_equal(inputs[name][0], rows[:, i])
    assert inputs["pitch"][0].tolist() == [72, 64, 60, 74, 48]  # top voice first
    outputs = trained["refine"](**{k: tf.constant(v) for k, v in inputs.items()})
    result = contract.refined(piece, rows, outputs, meta)
    assert (result.name, result.qpm, len(result)) == ("flat", 100.0, 5)
    got = performance.piece_to_rows(result)
    np.testing.assert_array_equal(got[:, :2], rows[:, :2])
    np.testing.assert_array_equal(got[:, 2], outputs["duration"].numpy()[0])
    np.testing.assert_array_equal(got[:, 3], outputs["velocity"].numpy()[0])
    assert got[0, 3] > got[2, 3]  # the top note of the first onset is played louder


def test_refine_inputs_with_a_generator_is_an_input_error(generator):
    with pytest.raises(InputError) as info:
        contract.refine_inputs(make_piece([(60, 0, 1)]), generator["meta"])
    assert str(info.value).startswith("--refine: lstm is not a refine model")


# --- trainer.generate --refine and python -m evaluation --------------------------------------

@pytest.fixture(scope="module")
def generator(zoo, tmp_path_factory):
    """The session zoo's tiny lstm on notes."""
    t = zoo("lstm", "notes")
    primer = write_midi_file(tmp_path_factory.mktemp("generator") / "primer.mid", [MELODY, BASS])
    return {"path": t.path, "loaded": t.loaded, "meta": Composer(t.loaded).metadata(),
            "primer": primer}


def velocities_by_note(piece, steps_per_quarter=4) -> set:
    rows = performance.piece_to_rows(piece, steps_per_quarter)
    return {tuple(r) for r in rows[:, [0, 1, 3]].tolist()}


def test_generate_with_refine_writes_the_refine_models_velocities(generator, trained, tmp_path,
                                                                  capsys):
    out = tmp_path / "refined.mid"
    rc = generate.main(["--model", str(generator["path"].parent), "--refine",
                        str(trained["path"].parent), "--primer", str(generator["primer"]),
                        "--steps", "16", "--seed", "3", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (written,) = read_file(out)
    # the same request by hand: generate, then refine those notes
    meta = generator["meta"]
    primer_piece = contract.read_primer(str(generator["primer"]))
    primer = contract.primer_steps(primer_piece, meta)
    inputs = contract.generate_inputs(primer, meta, 16, seed=3)
    outputs = generator["loaded"].signatures["generate"](**{k: tf.constant(v)
                                                            for k, v in inputs.items()})
    piece, _ = contract.to_piece(primer, outputs, meta, primer_piece.qpm)
    refine_in, rows = contract.refine_inputs(piece, trained["meta"])
    refined_out = trained["refine"](**{k: tf.constant(v) for k, v in refine_in.items()})
    expected = contract.refined(piece, rows, refined_out, trained["meta"])
    assert len(written) == len(expected) > 0
    assert velocities_by_note(written) == velocities_by_note(expected)
    velocities = set(written.velocity.tolist())
    assert velocities != {80} and len(velocities) > 1
    np.testing.assert_array_equal(np.sort(written.velocity),
                                  np.sort(refined_out["velocity"].numpy()[0]))


def test_generate_with_a_generator_as_refine_model_is_one_line(generator, tmp_path, capsys):
    out = tmp_path / "x.mid"
    rc = generate.main(["--model", str(generator["path"]), "--refine", str(generator["path"]),
                        "--primer", str(generator["primer"]), "--steps", "4", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: --refine: lstm is not a refine model")
    assert not out.exists()


def test_generate_with_a_refine_model_as_the_composer_is_one_line(trained, generator, tmp_path,
                                                                   capsys):
    out = tmp_path / "x.mid"
    rc = generate.main(["--model", str(trained["path"]), "--primer", str(generator["primer"]),
                        "--steps", "4", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "refine" in err[0]


def test_evaluate_a_refine_model_is_an_error(trained, corpus, tmp_path, capsys):
    rc = evaluate.main(["--model", str(trained["path"].parent), "--data", str(corpus),
                        "--train-data", str(corpus), "--samples", "1", "--steps", "8",
                        "--out", str(tmp_path / "eval")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "refine does not compose" in err[0] and str(trained["path"]) in err[0]
    assert not (tmp_path / "eval").exists()


def test_refined_keeps_onsets_and_notes_longer_than_the_model_knows(trained):
    meta = trained["meta"]
    # off-grid onsets, and a final note of 12 quarters (48 steps > max_duration 32)
    piece = from_notes([(67, 0.02, 1), (60, 0, 1), (62, 1.01, 1), (55, 2, 12)], name="long")
    inputs, rows = contract.refine_inputs(piece, meta)
    outputs = trained["refine"](**{k: tf.constant(v) for k, v in inputs.items()})
    result = contract.refined(piece, rows, outputs, meta)
    np.testing.assert_array_equal(result.start, piece.start)
    np.testing.assert_array_equal(result.pitch, piece.pitch)
    assert result.duration[3] == 12  # left as it was
    order = performance.note_order(piece)
    np.testing.assert_array_equal(result.velocity[order], outputs["velocity"].numpy()[0])


def test_left_padding_does_not_change_a_pieces_refinement(trained, held_out):
    """Training windows of short pieces are padded at the start: the first real note must be
    read the same with or without padding before it (no onset, nothing sounding before)."""
    rows = held_out[0][:16]
    padded = np.concatenate([np.zeros((6, 4), np.int32), rows])
    alone = call_refine(trained["refine"], rows[None, :, 0], rows[None, :, 1], rows[None, :, 2])
    after = call_refine(trained["refine"], padded[None, :, 0], padded[None, :, 1],
                        padded[None, :, 2])
    for a, b in zip(alone, after):
        np.testing.assert_array_equal(b[0, 6:], a[0])
