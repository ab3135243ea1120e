"""trainer: every model family on real data, causality, the `python -m trainer.task` CLI end to end,
determinism, resuming an interrupted job, bad input, and the losses / metrics / sampling units.

Everything is real: MIDI files written with mido, datasets built by `preprocessing.dataset`, Keras
models trained for a step or two, and the CLI run in-process (`trainer.task.main`) or, for the exit
codes and the kill-and-resume test, as a subprocess.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from evaluation import metrics as mm
from preprocessing import dataset, pianoroll
from preprocessing.dataset import Settings, split_of
from preprocessing.notes import Vocabulary, token_pitches
from preprocessing.piece import InputError
from preprocessing.readers import SUFFIXES, content_digest, read_file
from tests.conftest import BAD_INPUTS, two_voices, write_midi_file
from tests.zoo import TINY, hparams_flag, run_main
from trainer import callbacks, losses, metrics, sampling, task, training
from trainer import data as data_lib
from trainer.config import Config, parse_hparams
from trainer.models import MODELS, models_markdown, seq2seq

REPO = Path(__file__).resolve().parents[1]
SEQ_LEN = 8

# --- fixtures: a corpus of real MIDI files, datasets built from it once per module ---------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder of 8 small MIDI files: 6 in the training split and 2 in the validation split."""
    folder = tmp_path_factory.mktemp("corpus")
    wanted, found = {"train": 6, "validation": 2, "test": 0}, {s: 0 for s in dataset.SPLITS}
    for k in range(500):
        path = write_midi_file(folder / f"piece{k:03d}.mid", two_voices(k))
        split = split_of(content_digest(path.read_bytes()))
        if found[split] < wanted[split]:
            found[split] += 1
        else:
            path.unlink()
        if found == wanted:
            return folder
    raise AssertionError("no piece landed in the validation split")


@pytest.fixture(scope="module")
def datasets(corpus, tmp_path_factory):
    """(folder, spec) per (representation, encoding), built once."""
    out = {}
    for rep, encoding in (("notes", "active"), ("pianoroll", "active"),
                          ("pianoroll", "onset-sustain"), ("bars", "active"),
                          ("performance", "active")):
        folder = tmp_path_factory.mktemp(f"ds-{rep}-{encoding}")
        spec, summary = data_lib.prepare([str(corpus)], folder,
                                         Settings(representation=rep, encoding=encoding),
                                         progress=False)
        assert summary["pieces"] == {"train": 6, "validation": 2, "test": 0}
        out[rep, encoding] = folder, spec
    return out


def tiny_config(name: str, rep: str, **fields) -> Config:
    return Config(model=name, representation=rep, seq_len=SEQ_LEN, hparams=dict(TINY[name]),
                  **{"export_dir": "", **fields})


def first(arrays, n: int):
    return {k: v[:n] for k, v in arrays.items()} if isinstance(arrays, dict) else arrays[:n]


def run_task(argv: list[str]) -> tuple[int, str, str]:
    """`trainer.task.main` in this process: (exit status, stdout, stderr)."""
    return run_main(task.main, _no_export(argv))


def _no_export(argv) -> list[str]:
    """Runs here export nothing, unless a test asks: the repo's saved_models/ stays clean."""
    argv = [str(a) for a in argv]
    return argv if "--export-dir" in argv else [*argv, "--export-dir", ""]


def run_cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer.task", *_no_export(args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# --- units: losses, metrics, windows, sampling ---------------------------------------------------

def test_focal_loss_with_gamma_0_and_alpha_half_is_half_the_bce():
    rng = np.random.default_rng(0)
    y_true = (rng.random((4, 6, 88)) < 0.1).astype("float32")
    logits = rng.normal(0, 3, (4, 6, 88)).astype("float32")
    focal = float(losses.FocalLoss(alpha=0.5, gamma=0.0)(y_true, logits))
    bce = float(keras.losses.BinaryCrossentropy(from_logits=True)(y_true, logits))
    assert focal == pytest.approx(0.5 * bce, rel=1e-5)


def test_focal_loss_known_value_and_down_weighting_of_easy_frames():
    # one key, logit 0 (p = 0.5), on: alpha * (1 - p)^gamma * ln 2
    loss = losses.FocalLoss(alpha=0.75, gamma=2.0)
    assert float(loss(np.ones((1, 1)), np.zeros((1, 1), "float32"))) == \
        pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-5)
    # a confidently right silent key costs far less than under the alpha-weighted BCE
    easy = (np.zeros((1, 1)), np.full((1, 1), -4.0, "float32"))
    assert float(loss(*easy)) < 0.01 * float(losses.FocalLoss(0.75, 0.0)(*easy))
    assert isinstance(losses.roll_loss("bce"), keras.losses.BinaryCrossentropy)
    with pytest.raises(ValueError, match="bce or focal"):
        losses.roll_loss("hinge")


def test_focal_loss_config_round_trip():
    loss = losses.FocalLoss(alpha=0.3, gamma=1.5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (type(again), again.alpha, again.gamma) == (losses.FocalLoss, 0.3, 1.5)


def test_note_density_is_the_share_of_positive_logits():
    logits = np.array([[-1.0, 0.0, 2.0, 3.0], [-5.0, -0.1, 0.1, -2.0]], "float32")
    density = np.asarray(metrics.note_density(np.zeros_like(logits), logits))
    assert density.tolist() == pytest.approx([2 / 4, 1 / 4])  # per step: weights apply
    assert density.mean() == pytest.approx(3 / 8)
    names = [m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", ""))
             for m in metrics.roll_metrics()]
    assert names == ["precision", "recall", "note_density"]


def test_windows_stride_and_padding():
    piece = np.arange(10)[:, None] * np.ones((1, 3), np.int32)  # [10, 3], row i is i
    w = data_lib.windows([piece], 4)  # default stride 2: starts 0, 2, 4, 6
    assert w.shape == (4, 4, 3)
    assert w[:, 0, 0].tolist() == [0, 2, 4, 6]
    assert data_lib.windows([piece], 4, stride=3)[:, 0, 0].tolist() == [0, 3, 6]
    assert data_lib.windows([piece], 10).shape == (1, 10, 3)
    # a piece shorter than a window: one window, zeros (the OOV / silent step) at the start
    short = np.array([[5, 1, 1], [6, 2, 2], [7, 3, 3]], np.int32)
    (padded,) = data_lib.windows([short], 5)
    assert padded.tolist() == [[0, 0, 0], [0, 0, 0], [5, 1, 1], [6, 2, 2], [7, 3, 3]]
    # one-step pieces give nothing; several pieces' windows are stacked
    both = data_lib.windows([np.ones((1, 3), np.int32), short, piece], 5, stride=5)
    assert len(both) == 1 + 2


def test_windows_of_nothing_usable_is_an_input_error():
    from preprocessing.piece import InputError

    with pytest.raises(InputError, match="no training windows"):
        data_lib.windows([np.ones((1, 88), np.float32), np.zeros((0, 88), np.float32)], 4)


def test_frames_of_onset_sustain_are_onsets_then_holds():
    roll = np.zeros((2, 88, 2), np.uint8)
    roll[0, 3, 0] = 1
    roll[1, 3, 1] = 1
    f = pianoroll.to_frames(roll)
    assert f.shape == (2, 176) and f.dtype == np.float32
    assert np.flatnonzero(f[0]).tolist() == [3] and np.flatnonzero(f[1]).tolist() == [88 + 3]
    assert np.array_equal(pianoroll.from_frames(f, "onset-sustain"), roll)


def test_next_step_targets_are_the_inputs_shifted_by_one(datasets):
    folder, spec = datasets["notes", "active"]
    x, y = data_lib.next_step_arrays(folder, "train", spec, SEQ_LEN)
    assert x.dtype == np.int32 and x.shape[1:] == (SEQ_LEN, 3)
    for i, field in enumerate(data_lib.NOTE_FIELDS):
        assert y[field].shape == x.shape[:2]
        np.testing.assert_array_equal(y[field][:, :-1], x[:, 1:, i])
    _, last = data_lib.next_step_arrays(folder, "train", spec, SEQ_LEN, last_only=True)
    np.testing.assert_array_equal(last["token"], y["token"][:, -1])


def test_windows_mask_the_padding():
    short = np.array([[5, 1, 1], [6, 2, 2], [7, 3, 3]], np.int32)
    piece = np.arange(10)[:, None] * np.ones((1, 3), np.int32)
    w, valid = data_lib.windows([short, piece], 5, stride=5, mask=True)
    assert valid.tolist() == [[False, False, True, True, True], [True] * 5, [True] * 5]
    assert np.array_equal(w, data_lib.windows([short, piece], 5, stride=5))


@pytest.fixture(scope="module")
def short_and_long(tmp_path_factory):
    """A notes and a piano-roll dataset of one piece shorter than a window and one longer."""
    corpus = tmp_path_factory.mktemp("short-and-long")
    write_midi_file(corpus / "short.mid", [[(60, 0, 1), (64, 1, 1), (67, 2, 1)]])
    write_midi_file(corpus / "long.mid", two_voices(7))
    out = {}
    for rep in ("notes", "pianoroll"):
        folder = tmp_path_factory.mktemp(f"short-and-long-{rep}")
        out[rep] = data_lib.prepare([str(corpus)], folder, Settings(
            representation=rep, validation=0.0, test=0.0), progress=False)[1] and (
            folder, data_lib.spec_of(folder))
    return out


@pytest.mark.parametrize("rep", ["notes", "pianoroll"])
def test_padding_targets_never_count(rep, short_and_long):
    """Targets inside a short piece's left padding get weight 0: whatever they hold, the loss
    and the metrics are the same; a piece longer than the window has no padding at all."""
    folder, spec = short_and_long[rep]
    x, y = data_lib.next_step_arrays(folder, "train", spec, 16)
    clean, weights = data_lib.sample_weights(y)
    first = y["token"] if rep == "notes" else y
    padded = (first == data_lib.PAD) if rep == "notes" else (first == data_lib.PAD).all(-1)
    if rep == "notes":
        assert all(w is weights["token"] for w in weights.values())
        weights = weights["token"]
    assert padded.sum() > 0 and np.array_equal(weights == 0, padded)
    assert padded.any(axis=1).sum() == 1  # only the short piece's one window
    keras.utils.set_random_seed(0)
    model = MODELS["lstm"].build(spec, {**MODELS["lstm"].defaults, **TINY["lstm"]}, 16)
    weights = {k: weights for k in clean} if rep == "notes" else weights
    before = model.evaluate(x, clean, sample_weight=weights, verbose=0, return_dict=True)
    other = {k: np.where(padded, 1, v) for k, v in clean.items()} if rep == "notes" \
        else np.where(padded[..., None], 1.0, clean)
    after = model.evaluate(x, other, sample_weight=weights, verbose=0, return_dict=True)
    assert before == pytest.approx(after, rel=1e-6)
    # the long piece alone: no padding, no weights
    long_rows = ~padded.any(axis=1)
    assert data_lib.sample_weights({k: v[long_rows] for k, v in y.items()} if rep == "notes"
                                   else y[long_rows])[1] is None


@pytest.fixture(scope="module")
def biased_notes_model(datasets):
    """A real notes LSTM whose heads put almost all mass on class 0 of every field."""
    folder, spec = datasets["notes", "active"]
    model = MODELS["lstm"].build(spec, {**MODELS["lstm"].defaults, **TINY["lstm"]}, SEQ_LEN)
    for field in data_lib.NOTE_FIELDS:
        kernel, bias = model.get_layer(field).get_weights()
        bias[:] = 0
        bias[0] = 30.0
        model.get_layer(field).set_weights([np.zeros_like(kernel), bias])
    x, _ = data_lib.next_step_arrays(folder, "train", spec, SEQ_LEN)
    return model, spec, x[0]


def test_sampling_never_draws_the_oov_token_or_a_zero_duration(biased_notes_model):
    model, spec, primer = biased_notes_model
    steps = sampling.sample(model, spec, primer, 12, seed=1)
    assert steps.shape == (12, 3)
    assert steps[:, 0].min() >= 1 and steps[:, 1].min() >= 1
    assert steps[:, 0].max() < spec.vocab_size and steps[:, 1].max() <= spec.max_duration
    # a zero shift (notes together) is allowed: the biased head draws it every time
    assert steps[:, 2].tolist() == [0] * 12


def test_sampling_is_deterministic_by_seed(biased_notes_model):
    model, spec, primer = biased_notes_model
    kept = primer.copy()
    a = sampling.sample(model, spec, primer, 12, seed=7)
    b = sampling.sample(model, spec, primer, 12, seed=7)
    c = sampling.sample(model, spec, primer, 12, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # only the new steps come back, and the primer is left as it was
    assert len(a) == 12
    np.testing.assert_array_equal(primer, kept)


def test_sampling_a_roll_model_gives_binary_frames_and_a_piece(datasets):
    folder, spec = datasets["pianoroll", "active"]
    model = MODELS["lstm"].build(spec, {**MODELS["lstm"].defaults, **TINY["lstm"]}, SEQ_LEN)
    x, _ = data_lib.next_step_arrays(folder, "train", spec, SEQ_LEN)
    steps = sampling.sample(model, spec, x[0], 6, seed=0)
    assert steps.shape == (6, 88) and set(np.unique(steps)) <= {0.0, 1.0}
    np.testing.assert_array_equal(steps, sampling.sample(model, spec, x[0], 6, seed=0))
    piece = sampling.to_piece(spec, steps)
    assert len(piece) == int(steps.sum()) - int((steps[1:] * steps[:-1]).sum())  # runs of on


@pytest.mark.parametrize("name", [n for n, f in MODELS.items() if f.generates])
def test_training_samples_show_their_primer_and_are_measured_against_the_split(zoo, name):
    """What the sample callback draws and measures, for every family: the primer, then the
    continuation starting where it ends (GANs compose without one), and the held-out pieces as
    the family writes music, whose notes per beat the sample's density is divided by."""
    family, rep = MODELS[name], MODELS[name].representations[0]
    folder, spec = zoo.dataset(rep)  # the zoo's data; an untrained tiny model (no export)
    config = Config(model=name, representation=rep, encoding="active", seq_len=SEQ_LEN,
                    hparams=dict(TINY[name]))
    x, _ = family.arrays(folder, "train", spec, config)
    model = family.build(spec, config.hparams, SEQ_LEN)
    vocab = Vocabulary.load(folder / "vocab.json") if rep == "notes" else None
    primer = family.primer(x)
    steps = family.sample(model, spec, primer, 16, seed=1, seq_len=SEQ_LEN)
    alone = family.to_piece(spec, steps, vocab)
    whole, end = family.with_primer(spec, primer, steps, vocab)
    assert (end == 0) == family.is_gan
    inside = alone.start > 0
    # every note the continuation begins inside it is where it was, `end` later
    assert set(zip(alone.pitch[inside].tolist(), np.round(alone.start[inside] + end, 6))) <= \
        set(zip(whole.pitch.tolist(), np.round(whole.start, 6)))
    if end:
        assert (whole.start < end).any()  # the primer sounds before it
    pieces = family.split_pieces(folder, "train", spec, vocab)
    assert len(pieces) == 6 and all(len(p) for p in pieces)
    density = training.reference_density(family, spec, folder, vocab)
    assert density == pytest.approx(np.mean([mm.note_density(p) for p in pieces])) and density > 0
    # what the export keeps for the server's drift gauge: the same pieces' notes
    assert training.note_reference(family, spec, folder, vocab) == mm.note_distributions(pieces)


def test_a_family_that_does_not_compose_keeps_no_note_reference():
    assert training.note_reference(MODELS["refine"], None, None) is None


def test_teacher_forcing_schedule_sets_the_ratio_and_history_reports_it(datasets):
    folder, spec = datasets["pianoroll", "active"]
    config = tiny_config("seq2seq", "pianoroll")
    x, y = MODELS["seq2seq"].arrays(folder, "train", spec, config)
    model = MODELS["seq2seq"].build(spec, config.hparams, SEQ_LEN)
    schedule = seq2seq.TeacherForcingSchedule(start=0.9, decay=0.5, floor=0.3)
    history = model.fit(first(x, 16), y[:16], batch_size=8, epochs=4, verbose=0,
                        callbacks=[schedule])
    expected = [max(0.3, 0.9 * 0.5 ** e) for e in range(4)]  # 0.9, 0.45, 0.3, 0.3
    np.testing.assert_allclose(history.history["teacher_forcing"], expected, rtol=1e-6)
    assert float(model.teacher_forcing.numpy()) == pytest.approx(0.3)
    # the family's own callbacks build the schedule from the hparams
    own, calibration = MODELS["seq2seq"].callbacks(config.hparams)
    assert (own.start, own.decay, own.floor) == (1.0, 1.0, 0.25)  # teacher-forced by default
    assert isinstance(calibration, seq2seq.CountCalibration)


# --- config and --hparams ------------------------------------------------------------------------

def test_registry():
    assert {n: f.representations for n, f in MODELS.items()} == {
        "lstm": ("notes", "pianoroll"), "bilstm": ("notes", "pianoroll"),
        "attention_lstm": ("notes", "pianoroll"), "seq2seq": ("pianoroll",),
        "midinet": ("bars",), "vae": ("pianoroll",), "wgan_gp": ("pianoroll",),
        "refine": ("performance",), "rnn_nade": ("pianoroll",)}
    assert [n for n, f in MODELS.items() if f.is_gan] == ["midinet", "wgan_gp"]
    assert [n for n, f in MODELS.items() if f.last_only] == ["bilstm"]


def test_every_registered_family_has_tiny_settings():
    """tests/zoo.py's TINY is the one place a family's test-sized hparams live."""
    assert set(TINY) == set(MODELS)
    for name, hparams in TINY.items():
        assert set(hparams) <= set(MODELS[name].defaults), name


def test_docs_models_table_is_the_registrys():
    """docs/MODELS.md is `python -m trainer.task --list-models markdown`: it cannot drift."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "MODELS.md").read_text()
    assert text == models_markdown(), "rerun: python -m trainer.task --list-models markdown " \
                                      "> docs/MODELS.md"


def test_parse_hparams_types_values_like_the_defaults():
    hp = parse_hparams(" units=32 , dropout=0.25,loss=focal,", "lstm", "pianoroll")
    assert hp == {"units": 32, "dropout": 0.25, "loss": "focal"}
    assert type(hp["units"]) is int and type(hp["dropout"]) is float
    assert parse_hparams("spectral_norm=false,noise=4", "midinet") == \
        {"spectral_norm": False, "noise": 4}
    assert parse_hparams("spectral_norm=True", "midinet") == {"spectral_norm": True}
    config = Config(model="seq2seq", hparams={"units": 8})
    assert config.representation == "pianoroll"
    assert config.hparams == {**MODELS["seq2seq"].defaults, "units": 8}
    assert config.job_dir == str(Path("jobs") / "seq2seq")


def test_a_bool_hparam_that_is_not_a_bool_is_an_error():
    # BUG: trainer/config.py parse_hparams turns any text but 1/true/yes into False, so a
    # typo ("ture", "maybe", "2") silently switches the option off instead of being rejected
    from preprocessing.piece import InputError

    with pytest.raises(InputError, match="spectral_norm"):
        parse_hparams("spectral_norm=maybe", "midinet")


# --- every family builds, trains a step and saves ------------------------------------------------

CASES = [(n, r, "active") for n, f in MODELS.items() for r in f.representations] + [
    ("lstm", "pianoroll", "onset-sustain")]


def trainable_snapshot(model) -> list[np.ndarray]:
    return [np.array(v) for v in model.trainable_weights]


@pytest.mark.parametrize("name, rep, encoding", CASES, ids=[f"{n}-{r}-{e}" for n, r, e in CASES])
def test_family_builds_trains_a_step_and_saves(name, rep, encoding, datasets, tmp_path):
    folder, spec = datasets[rep, encoding]
    family = MODELS[name]
    config = tiny_config(name, rep, encoding=encoding)
    x, y = family.arrays(folder, "train", spec, config)
    xb, yb = first(x, 4), first(y, 4)
    model = family.build(spec, config.hparams, SEQ_LEN)
    noise = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    out = model(noise) if name == "wgan_gp" else model(xb) if name != "midinet" else None
    keys = 176 if encoding == "onset-sustain" else 88

    if name in ("vae", "wgan_gp"):  # segments of seq_len frames; the GAN writes its own
        assert xb.shape == (4, SEQ_LEN, keys)
        assert tuple(out.shape) == (4, SEQ_LEN, keys)
        if name == "vae":
            np.testing.assert_array_equal(xb, yb)
        else:
            assert float(np.min(out)) >= 0 and float(np.max(out)) <= 1
    elif name == "refine":
        assert set(xb) == {"pitch", "onset", "duration"} and set(yb) == {"velocity", "duration"}
        assert xb["pitch"].shape == (4, SEQ_LEN)
        assert tuple(out["duration"].shape) == (4, SEQ_LEN, spec.max_duration + 1)
        assert tuple(out["velocity"].shape) == (4, SEQ_LEN, 1)
    elif rep == "notes":
        assert x.shape[1:] == (SEQ_LEN, 3)
        assert set(out) == set(data_lib.NOTE_FIELDS)
        for field, classes in spec.classes.items():
            expected = (4, classes) if name == "bilstm" else (4, SEQ_LEN, classes)
            assert tuple(out[field].shape) == expected, field
            assert yb[field].shape == expected[:-1]
        assert spec.classes == {"token": spec.vocab_size, "duration": 33, "shift": 33}
    elif name == "seq2seq":
        assert xb["encoder"].shape == (4, SEQ_LEN, keys)
        assert xb["decoder"].shape == (4, SEQ_LEN, keys + 1)
        # decoder input: a start frame (flag only), then the targets shifted right
        assert xb["decoder"][:, 0].tolist() == [[0.0] * keys + [1.0]] * 4
        np.testing.assert_array_equal(xb["decoder"][:, 1:, :keys], yb[:, :-1])
        np.testing.assert_array_equal(xb["target"], yb)  # what the NADE head reads
        assert tuple(out.shape) == (4, SEQ_LEN, keys)
    elif name == "rnn_nade":  # reads L + 1 frames, scores the last L (a silent frame first)
        assert xb.shape == (4, SEQ_LEN + 1, keys) and tuple(out.shape) == (4, SEQ_LEN, keys)
        assert not xb[0, 0].any()
        np.testing.assert_array_equal(xb[:, 1:], yb)
    elif rep == "pianoroll":
        expected = (4, keys) if name == "bilstm" else (4, SEQ_LEN, keys)
        assert tuple(out.shape) == expected and yb.shape == expected
        if name == "bilstm":  # the frame after the window, at the family's window spacing
            _, every = data_lib.next_step_arrays(folder, "train", spec, SEQ_LEN,
                                                 stride=family.window_stride)
            np.testing.assert_array_equal(yb, every[:4, -1])
        else:
            np.testing.assert_array_equal(xb[:, 1:], yb[:, :-1])
    else:  # midinet
        assert xb["melody"].shape == xb["previous"].shape == (4, 16, 128, 1)
        assert xb["chord"].shape == (4, 13)
        bars = np.asarray(model({"chord": xb["chord"], "previous": xb["previous"]}))
        assert bars.shape == (4, 16, 128, 1)
        assert bars.min() >= 0 and bars.max() <= 1

    before = trainable_snapshot(model)
    # eagerly: tracing a step costs 5-9 s a family and `trainer.task` runs in the CLI tests trace
    # every family's step but bilstm's, which is traced here
    model.run_eagerly = name != "bilstm"
    history = model.fit(xb, yb, batch_size=4, epochs=1, verbose=0).history
    after = trainable_snapshot(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "no weight changed"
    if name == "midinet":
        assert set(history) == {"d_loss", "g_loss"}
    elif name == "wgan_gp":
        assert set(history) == {"d_loss", "g_loss", "wasserstein", "penalty", "spread"}
    elif name == "vae":
        assert set(history) == {"loss", "recon", "kl", "elbo"}
    else:
        assert "loss" in history
    assert all(np.isfinite(v[-1]) for v in history.values())

    # saved and loaded back, the model gives the same outputs
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", custom_objects=family.custom_objects)
    if name == "midinet":
        feed = {"chord": xb["chord"], "previous": xb["previous"],
                "noise": np.random.default_rng(0).normal(size=(4, 8)).astype("float32")}
    elif name == "wgan_gp":
        feed = noise
    else:
        feed = xb
    for a, b in zip(keras.tree.flatten(model(feed)), keras.tree.flatten(again(feed))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, rep", [("seq2seq", "pianoroll"), ("midinet", "bars")])
def test_custom_train_steps_take_keras_train_on_batch(name, rep, datasets):
    # BUG: trainer/models/seq2seq.py:87 (`x, y = data`) and midinet.py:128 (`x, _ = data`)
    # assume 2-tuples; Keras hands train_step (x, y, sample_weight) from train_on_batch (and
    # from fit with sample weights), so both raise "too many values to unpack"
    folder, spec = datasets[rep, "active"]
    family = MODELS[name]
    x, y = family.arrays(folder, "train", spec, tiny_config(name, rep))
    model = family.build(spec, {**family.defaults, **TINY[name]}, SEQ_LEN)
    logs = model.train_on_batch(first(x, 4), first(y, 4), return_dict=True)
    expected = {"d_loss", "g_loss"} if name == "midinet" else {"loss", "teacher_forcing"}
    assert expected <= set(logs)


def test_the_embedding_hparam_sizes_the_event_embeddings(datasets):
    folder, spec = datasets["notes", "active"]
    defaults = MODELS["lstm"].defaults

    def embedding_dims(size):
        model = MODELS["lstm"].build(spec, {**defaults, **TINY["lstm"], "embedding": size},
                                     SEQ_LEN)
        return [model.get_layer(f"{f}_embedding").output_dim for f in data_lib.NOTE_FIELDS]

    small, large = embedding_dims(8), embedding_dims(32)
    assert small[0] == 8 and large[0] == 32
    assert small != large


# --- causality -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lstm", "attention_lstm"])
@pytest.mark.parametrize("rep", ["notes", "pianoroll"])
def test_outputs_before_t_do_not_see_the_input_at_t(name, rep, datasets):
    folder, spec = datasets[rep, "active"]
    seq_len, t = 12, 5
    config = Config(model=name, representation=rep, seq_len=seq_len, hparams=TINY[name])
    x, _ = MODELS[name].arrays(folder, "train", spec, config)
    model = MODELS[name].build(spec, config.hparams, seq_len)
    a = x[:3].copy()
    b = a.copy()
    if rep == "notes":  # another token, duration and shift at t only
        b[:, t, 0] = (b[:, t, 0] + 3) % spec.vocab_size
        b[:, t, 1] = (b[:, t, 1] + 5) % (spec.max_duration + 1)
        b[:, t, 2] = (b[:, t, 2] + 7) % (spec.max_shift + 1)
    else:
        b[:, t] = 1 - b[:, t]
    for out_a, out_b in zip(keras.tree.flatten(model(a)), keras.tree.flatten(model(b))):
        out_a, out_b = np.asarray(out_a), np.asarray(out_b)
        np.testing.assert_allclose(out_a[:, :t], out_b[:, :t], rtol=0, atol=1e-6)
        assert np.abs(out_a[:, t] - out_b[:, t]).max() > 1e-5  # position t does see it


# --- the CLI end to end --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e2e(corpus, tmp_path_factory):
    """One attention_lstm job on notes, sampled every 5 epochs (so only after its last, the
    2nd); run through `main` in-process."""
    job = tmp_path_factory.mktemp("e2e") / "job"
    rc, out, err = run_task(["--model", "attention_lstm", "--representation", "notes",
                             "--data", corpus, "--epochs", 2, "--seq-len", SEQ_LEN,
                             "--batch-size", 16, "--hparams", hparams_flag("attention_lstm"),
                             "--job-dir", job, "--sample-every", 5, "--sample-steps", 16,
                             "--seed", 3])
    return rc, out, err, job


def test_cli_job_folder(e2e):
    rc, out, err, job = e2e
    assert rc == 0, err
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["job_dir"] == str(job)
    config = json.loads((job / "config.json").read_text())
    assert config["model"] == "attention_lstm" and config["representation"] == "notes"
    assert config["epochs"] == 2 and config["seed"] == 3
    assert config["hparams"] == {**MODELS["attention_lstm"].defaults, **TINY["attention_lstm"]}
    assert (job / "checkpoints" / "best.keras").is_file()
    # the job links the encoded data it trained on
    assert (job / "data" / "meta.json").is_file()

    rows = read_csv(job / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    lr = TINY["attention_lstm"]["learning_rate"]
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([lr, lr])
    assert {"loss", "val_loss", "token_loss", "val_token_accuracy"} <= set(rows[0])
    # what main prints is the last epoch's metrics
    for key in ("loss", "val_loss", "learning_rate"):
        assert printed[key] == pytest.approx(float(rows[-1][key]), rel=1e-6)


def test_cli_writes_tensorboard_logs(e2e):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    *_, job = e2e
    logs = job / "logs"
    assert list(logs.rglob("events.out.tfevents.*"))
    for run in ("train", "validation"):
        acc = EventAccumulator(str(logs / run))
        acc.Reload()
        assert "epoch_loss" in acc.Tags()["tensors"], run
        assert [e.step for e in acc.Tensors("epoch_loss")] == [0, 1]
    root = EventAccumulator(str(logs))
    root.Reload()
    tags = set(root.Tags()["tensors"])
    assert "_hparams_/session_start_info" in tags
    assert {"sample/notes", "sample/distinct_pitches", "sample/midi", "sample/piano_roll",
            "sample/silent_step_share", "sample/polyphony", "sample/notes_per_beat",
            "sample/density_ratio"} <= tags
    assert [e.step for e in root.Tensors("sample/notes")] == [2]  # after the last epoch
    image = root.Tensors("sample/piano_roll")[0].tensor_proto.string_val[2]  # [w, h, PNG]
    assert image.startswith(b"\x89PNG")
    if "sample/audio" in tags:  # FluidSynth installed: at most AUDIO_SECONDS, mono
        audio = root.Tensors("sample/audio")[0].tensor_proto.string_val[0]
        assert audio.startswith(b"RIFF") and len(audio) <= 16000 * 2 * 10 + 100


def test_cli_model_loads_back_and_reproduces_the_last_validation_loss(e2e):
    *_, job = e2e
    family = MODELS["attention_lstm"]
    model = keras.models.load_model(job / "model.keras", custom_objects=family.custom_objects)
    config = Config(**{**json.loads((job / "config.json").read_text()), "data": ("x",)})
    folder = job / "data"
    x, y = family.arrays(folder, "validation", data_lib.spec_of(folder), config)
    result = model.evaluate(x, y, batch_size=config.batch_size, verbose=0, return_dict=True)
    last = read_csv(job / "metrics.csv")[-1]
    assert result["loss"] == pytest.approx(float(last["val_loss"]), rel=1e-4)
    assert result["token_loss"] == pytest.approx(float(last["val_token_loss"]), rel=1e-4)
    best = keras.models.load_model(job / "checkpoints" / "best.keras",
                                   custom_objects=family.custom_objects)
    assert best.count_params() == model.count_params()


def test_cli_samples_are_midi_files_of_the_vocabulary(e2e):
    *_, job = e2e
    samples = sorted((job / "samples").glob("*.mid"))
    assert [p.name for p in samples] == ["epoch_002.mid"]  # a run shorter than --sample-every
    assert (job / "samples" / "epoch_002.png").is_file()
    vocab = Vocabulary.load(job / "data" / "vocab.json")
    known = {p for token in vocab.tokens for p in token_pitches(token)}
    for path in samples:
        (piece,) = read_file(path)
        assert len(piece) > 0
        assert set(piece.pitch.tolist()) <= known, path.name


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_same_losses_other_seed_other_losses(corpus, tmp_path):
    def losses_of(seed, name):
        job = tmp_path / name
        rc, _, err = run_task(["--model", "lstm", "--representation", "notes", "--data", corpus,
                               "--epochs", 2, "--seq-len", SEQ_LEN, "--batch-size", 16,
                               "--hparams", hparams_flag("lstm"), "--sample-every", 0,
                               "--seed", seed, "--job-dir", job])
        assert rc == 0, err
        return [(r["loss"], r["val_loss"], r["token_loss"]) for r in read_csv(job / "metrics.csv")]

    first_run, second_run, other = losses_of(5, "a"), losses_of(5, "b"), losses_of(6, "c")
    assert len(first_run) == 2
    assert first_run == second_run  # the text of the CSV: bit for bit
    assert first_run[-1][0] != other[-1][0]


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_unknown_model_is_an_argparse_error_listing_the_choices(tmp_path):
    job = tmp_path / "job"
    result = run_cli("--model", "transformer", "--job-dir", job, timeout=120)
    assert result.returncode == 2
    (line,) = [s for s in result.stderr.splitlines() if "error:" in s]
    assert "--model" in line and "transformer" in line
    for name in MODELS:
        assert name in line
    assert not job.exists()


@pytest.mark.parametrize("hparams, words", [
    ("units", ["name=value", "'units'"]),
    ("units=16,nosuch=3", ["'nosuch'", *MODELS["lstm"].defaults]),  # every valid name
    ("units=many", ["units", "'many'", "int"]),
    ("dropout=0.5.1", ["dropout", "'0.5.1'", "float"]),
])
def test_malformed_hparams(hparams, words, corpus, tmp_path):
    job = tmp_path / "job"
    rc, out, err = run_task(["--model", "lstm", "--data", corpus, "--hparams", hparams,
                             "--job-dir", job])
    assert rc == 2
    (line,) = error_lines(err)
    assert line.startswith("error: --hparams: ")
    for word in words:
        assert word in line, (word, line)
    assert not job.exists()


def test_data_of_only_bad_files(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for maker, _ in BAD_INPUTS.values():
        maker(folder, write_midi_file)
    readable = [p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES]
    job = tmp_path / "job"
    rc, _, err = run_task(["--model", "lstm", "--data", folder, "--job-dir", job])
    assert rc != 0
    (line,) = error_lines(err)
    assert line.startswith(f"error: nothing usable in {folder}: all {len(readable)} files skipped")
    report = Path(line.split("reasons in ")[1].rstrip(")"))
    rows = json.loads(report.read_text())["files"]
    assert len(rows) == len(readable) and {r["status"] for r in rows} == {"skipped"}
    assert not job.exists()


def test_representation_a_model_does_not_take(corpus, tmp_path):
    job = tmp_path / "job"
    rc, _, err = run_task(["--model", "seq2seq", "--representation", "notes", "--data", corpus,
                           "--job-dir", job])
    assert rc != 0
    assert error_lines(err) == ["error: --representation: seq2seq takes pianoroll, not 'notes'"]
    assert not job.exists()
    rc, _, err = run_task(["--model", "midinet", "--representation", "pianoroll",
                           "--data", corpus, "--job-dir", job])
    assert rc != 0 and "midinet takes bars" in err
    assert not job.exists()


def test_bad_numbers_are_errors(corpus, tmp_path):
    job = tmp_path / "job"
    for flag in ("--epochs", "--batch-size", "--seq-len"):
        rc, _, err = run_task(["--model", "lstm", "--data", corpus, flag, 0, "--job-dir", job])
        assert rc != 0 and error_lines(err) == [f"error: {flag} must be >= 1"]
    assert not job.exists()


def test_multiworker_needs_a_cluster_and_a_next_step_model(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    job = tmp_path / "job"
    rc, _, err = run_task(["--model", "lstm", "--data", corpus, "--strategy", "multiworker",
                           "--job-dir", job])
    assert rc != 0
    (line,) = error_lines(err)
    assert line.startswith("error: --strategy multiworker") and "TF_CONFIG" in line
    rc, _, err = run_task(["--model", "midinet", "--data", corpus, "--strategy", "multiworker",
                           "--job-dir", job])
    assert rc != 0 and error_lines(err)[0].startswith("error: --strategy multiworker: midinet")
    assert not job.exists()


def test_data_without_a_training_window_writes_no_job(tmp_path):
    # BUG: trainer/task.py train_and_evaluate creates the job folder (config.json, the data
    # link) before training.fit finds the data unusable (data.windows raises InputError "no training
    # windows"), so a failed run leaves a half-written job behind
    folder = tmp_path / "one-note-pieces"
    for k in range(4):
        write_midi_file(folder / f"n{k}.mid", [[(60 + k, 0, 0.25)]])  # one event each
    job = tmp_path / "job"
    rc, _, err = run_task(["--model", "lstm", "--data", folder, "--job-dir", job])
    assert rc != 0
    assert error_lines(err) == ["error: no training windows: the data holds no piece with two "
                                "or more steps"]
    assert not job.exists(), sorted(p.name for p in job.iterdir())


def test_an_invalid_hparam_value_is_a_clean_error_before_the_job(corpus, tmp_path):
    # BUG: parse_hparams only checks types, so `loss=hinge` passes; losses.roll_loss then
    # raises ValueError inside model building, after config.json is written: the CLI dies with a
    # traceback (exit 1) and leaves a half-written job folder
    job = tmp_path / "job"
    try:
        rc, _, err = run_task(["--model", "lstm", "--representation", "pianoroll", "--data",
                               corpus, "--hparams", "loss=hinge", "--job-dir", job])
    except Exception as exc:  # what main lets escape becomes a traceback and exit 1
        rc, err = f"raised {exc!r}", ""
    leftover = sorted(p.name for p in job.iterdir()) if job.exists() else []
    assert rc == 2, rc
    assert error_lines(err) and error_lines(err)[0].startswith("error: ") and "hinge" in err
    assert not leftover, leftover


# --- resume after a kill -------------------------------------------------------------------------

@pytest.mark.slow
def test_a_killed_job_resumes_where_it_stopped(corpus, tmp_path):
    job = tmp_path / "job"
    epochs = 8  # the job is killed after its first epoch: seven more leave time for the kill
    argv = ["--model", "lstm", "--representation", "notes", "--data", str(corpus), "--epochs",
            str(epochs), "--seq-len", str(SEQ_LEN), "--batch-size", "16", "--hparams",
            hparams_flag("lstm"), "--sample-every", "0", "--patience", "1000", "--job-dir",
            str(job)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    metrics_csv = job / "metrics.csv"
    proc = subprocess.Popen([sys.executable, "-m", "trainer.task", *_no_export(argv)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if (job / "backup").is_dir() and metrics_csv.exists() \
                    and len(read_csv(metrics_csv)) >= 1:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the job ended before it could be killed"
    before = [int(r["epoch"]) for r in read_csv(metrics_csv)]
    assert before == list(range(len(before))) and 1 <= len(before) < epochs
    assert not (job / "model.keras").exists()

    rc, _, err = run_task(argv)  # the rerun, in this process
    assert rc == 0, err[-3000:]
    rows = read_csv(metrics_csv)
    # the rerun continues the epoch count: every epoch once, none from 0 again
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    # ... from the backed-up weights: a fresh start with the same seed would repeat epoch 0's loss
    resumed = rows[len(before)]
    assert float(resumed["loss"]) < float(rows[0]["loss"])
    assert (job / "model.keras").is_file()
    assert not (job / "backup").exists()  # removed once training finished


class _Killed(Exception):
    """Stands in for a kill: raised from a callback, it ends fit() without on_train_end."""


class _KillAfter(keras.callbacks.Callback):
    def __init__(self, epochs: int):
        super().__init__()
        self.epochs, self.seen = epochs, []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise _Killed


def _fit_with_backup(backup: Path, epochs: int, kill_after: int | None = None) -> list[int]:
    """Fits a tiny model with the job's backup callback; returns the epochs it ran."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    recorder = _KillAfter(kill_after or epochs + 1)
    try:
        model.fit(x, x[:, :1], epochs=epochs, verbose=0,
                  callbacks=[callbacks.AtomicBackupAndRestore(str(backup)), recorder])
    except _Killed:
        pass
    return recorder.seen


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["newest weights", "all weights", "all metadata"])
def test_a_corrupt_backup_resumes_from_the_last_good_one_or_starts_over(tmp_path, capsys, damage):
    # BUG (issue 11): a truncated backup/latest.weights.h5 or training_metadata.json made every
    # rerun die with a raw h5py / JSON traceback until the user deleted backup/
    backup = tmp_path / "backup"
    assert _fit_with_backup(backup, epochs=6, kill_after=3) == [0, 1, 2]
    weights = sorted(backup.rglob("*.h5"))
    metadata = sorted(backup.rglob("*.json"))
    assert weights and metadata
    if damage == "newest weights":
        _truncate(weights[-1])
    else:
        for path in weights if damage == "all weights" else metadata:
            _truncate(path)
    capsys.readouterr()
    seen = _fit_with_backup(backup, epochs=6)
    err = capsys.readouterr().err
    if damage == "newest weights":
        assert seen == [2, 3, 4, 5]  # from epoch 2's backup, the one before the damaged one
        assert "resuming after epoch 2" in err
    else:
        assert seen == list(range(6))
        assert "no readable backup; training starts over from epoch 1" in err
    assert "unreadable" in err and all(len(line) < 400 for line in err.splitlines())
    assert not backup.exists()  # a finished run removes its backup


def test_weights_and_epoch_of_a_backup_are_one_atomic_unit(tmp_path, monkeypatch, capsys):
    # BUG (issue 11): weights and metadata were replaced one after the other, so a kill between
    # the two paired new weights with the old epoch
    backup = tmp_path / "backup"
    _fit_with_backup(backup, epochs=6, kill_after=2)
    rename = os.rename

    def killed_before_publishing(src, dst):
        if ".writing-" in str(src):
            raise _Killed
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_before_publishing)
    assert _fit_with_backup(backup, epochs=6) == [2]  # killed while saving epoch 3's backup
    monkeypatch.setattr(os, "rename", rename)
    assert list(backup.glob(".writing-*"))  # the kill's leftovers
    capsys.readouterr()
    assert _fit_with_backup(backup, epochs=6) == [2, 3, 4, 5]
    assert "resuming after epoch 2" in capsys.readouterr().err


def test_a_rerun_of_a_finished_job_exports_without_training_again(corpus, tmp_path):
    # BUG (issue 11): rerunning a finished job trained again from epoch 1 although model.keras
    # was there; a killed export left .staging-PID folders forever
    job, saved = tmp_path / "job", tmp_path / "saved"
    argv = ["--model", "lstm", "--representation", "notes", "--data", corpus, "--epochs", "2",
            "--seq-len", SEQ_LEN, "--batch-size", "16", "--hparams", hparams_flag("lstm"),
            "--sample-every", "0", "--job-dir", job, "--export-dir", saved]
    rc, out, err = run_task(argv)
    assert rc == 0, err
    first = json.loads(out.strip().splitlines()[-1])
    rows = read_csv(job / "metrics.csv")
    stale = saved / "lstm" / ".staging-999999999"  # a pid no process has
    stale.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = saved / "lstm" / f".staging-{live.pid}"
        busy.mkdir()
        rc, out, err = run_task(argv)
        assert busy.exists()  # an export still running elsewhere is left alone
    finally:
        live.kill()
        live.wait()
    assert rc == 0, err
    assert "already trained with these settings on this data" in err
    again = json.loads(out.strip().splitlines()[-1])
    assert again["loss"] == first["loss"] and again["export"].endswith("/2")
    assert read_csv(job / "metrics.csv") == rows  # no epoch was trained
    assert not stale.exists()

    # --epochs 3: another model (trained, not exported: the export is the runs' above)
    rc, out, err = run_task([*argv[:7], "3", *argv[8:], "--export-dir", ""])
    assert rc == 0, err
    assert "other settings (epochs); training again from epoch 1" in err
    assert len(read_csv(job / "metrics.csv")) == 3


def test_a_job_killed_while_exporting_only_exports_when_rerun(corpus, tmp_path, monkeypatch):
    # BUG (probe, issue 11): the backup was gone and finished.json not yet written, so a kill
    # during the export meant training again from epoch 1
    import trainer.export

    job, saved = tmp_path / "job", tmp_path / "saved"
    argv = ["--model", "lstm", "--representation", "notes", "--data", corpus, "--epochs", "2",
            "--seq-len", SEQ_LEN, "--batch-size", "16", "--hparams", hparams_flag("lstm"),
            "--sample-every", "0", "--job-dir", job, "--export-dir", saved]
    export = trainer.export.export_trained

    def killed(*args, **kwargs):
        raise _Killed

    monkeypatch.setattr(trainer.export, "export_trained", killed)
    with pytest.raises(_Killed):
        run_task(argv)
    monkeypatch.setattr(trainer.export, "export_trained", export)
    rows = read_csv(job / "metrics.csv")
    rc, out, err = run_task(argv)
    assert rc == 0, err
    assert "already trained with these settings on this data" in err
    assert read_csv(job / "metrics.csv") == rows
    assert json.loads(out.strip().splitlines()[-1])["export"].endswith("/1")


def test_roll_loss_hparams_are_refused_for_notes_models(tmp_path):
    job = tmp_path / "job"
    rc, _, err = run_task(["--model", "lstm", "--representation", "notes", "--hparams",
                           "loss=focal", "--job-dir", job])
    assert rc == 2 and "piano-roll" in err.strip().splitlines()[-1]
    assert not job.exists()


def test_transposition_flags_reach_the_data_settings():
    config = task.parse_args(["--model", "lstm", "--to-c", "--augment", "2", "--patience", "3"])
    settings = task.data_settings(config)
    assert settings.to_c and settings.augment == 2 and config.patience == 3


def test_a_flag_left_out_takes_the_familys_budget_and_a_flag_given_wins():
    nade = task.parse_args(["--model", "rnn_nade"])
    assert (nade.epochs, nade.steps_per_quarter, nade.encoding, nade.augment, nade.seq_len,
            nade.batch_size, nade.patience) == (36, 1, "sampled", 2, 32, 16, 4)
    assert task.data_settings(nade).steps_per_quarter == 1
    mine = task.parse_args(["--model", "rnn_nade", "--steps-per-quarter", "4", "--epochs", "3",
                            "--encoding", "active", "--augment", "0"])
    assert (mine.epochs, mine.steps_per_quarter, mine.encoding, mine.augment, mine.seq_len) == \
        (3, 4, "active", 0, 32)
    # a family without TRAINING: the shared defaults
    lstm = task.parse_args(["--model", "lstm"])
    assert (lstm.steps_per_quarter, lstm.encoding, lstm.seq_len, lstm.batch_size) == \
        (4, "active", 64, 64)
    assert lstm.to_c is False
    assert MODELS["rnn_nade"].budget in models_markdown()
    assert "--steps-per-quarter 1" in MODELS["rnn_nade"].budget
    # a switch: the family's on, --no-to-c off
    assert task.parse_args(["--model", "wgan_gp"]).to_c is True
    assert task.parse_args(["--model", "wgan_gp", "--no-to-c"]).to_c is False
    assert "--to-c" in MODELS["wgan_gp"].budget.split()
    with pytest.raises(InputError, match="--steps-per-quarter must be >= 1"):
        Config(model="lstm", steps_per_quarter=0)


@pytest.mark.slow
def test_the_clis_print_only_their_own_words():
    """No TensorFlow start-up noise (CUDA probing, oneDNN and absl lines) before a trainer CLI's
    own output, and both CLIs parse their flags before TensorFlow is imported: the registry
    imports a family (and TensorFlow) when it is first looked up."""
    def run(*argv):
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)

    imported = run("-c", "import sys, trainer.generate, trainer.task; "
                   "from trainer.models import MODELS; "
                   "print('lstm' in MODELS, list(MODELS)[0], MODELS.get('nosuch'), "
                   "'tensorflow' in sys.modules)")
    assert imported.stdout.strip() == "True lstm None False", imported.stderr
    listed = run("-m", "trainer.task", "--list-models")
    assert listed.stderr == "" and listed.stdout.startswith("`lstm`: "), listed.stderr[:500]
    err = run("-m", "trainer.task", "--model", "nosuch").stderr
    assert err.startswith("usage: python -m trainer.task"), err[:500]
    assert "error: argument --model: invalid choice: 'nosuch'" in err.splitlines()[-1]
    err = run("-m", "trainer.generate", "--model", "/nonexistent", "--out", "x.mid").stderr
    assert err == "error: /nonexistent: no exported SavedModel (expected /nonexistent/<version>/)\n"
