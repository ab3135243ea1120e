"""Conditional generation: condition vectors (`trainer.conditions`), key names, and conditional
`lstm` / `attention_lstm` models trained by `python -m trainer.task --hparams condition=true`,
exported, loaded back and asked for music in a key and at a density.

Everything is real: MIDI files written with mido, datasets built by `preprocessing.dataset`, tiny
models trained for two epochs in this process (`trainer.task.main`), their SavedModels loaded with
`tf.saved_model.load`, and the `trainer.generate` CLI run in-process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from preprocessing import notes, pianoroll
from preprocessing.notes import Vocabulary, event_string, parse_event_string
from preprocessing.piece import InputError
from preprocessing.readers import read_file
from preprocessing.transforms import KEY_INDEX, KEY_PROFILES, TONICS, key_name
from serving import contract
from serving.composer import Composer
from serving.errors import error_message
from tests.conftest import BASS, MELODY, grid_notes, make_piece, two_voices, write_midi_file
from tests.zoo import hparams_flag, run_main
from trainer import conditions, data, decoders, export, generate, sampling, task
from trainer.config import Config
from trainer.models import MODELS, next_step_export

SEQ_LEN = 8
STEPS = 12
TINY = {"lstm": hparams_flag("lstm", embedding=8),
        "attention_lstm": hparams_flag("attention_lstm")}
INPUTS = {"notes": "primer,num_steps,temperature,top_k,seed,key,density",
          "pianoroll": "primer,num_steps,temperature,threshold,seed,key,density"}
C, E, G, A3 = 60, 64, 67, 57


def hist(*pitch_classes) -> np.ndarray:
    out = np.zeros(12, np.float32)
    for pc in pitch_classes:
        out[pc] += 1
    return out / max(out.sum(), 1)


# --- condition vectors by hand --------------------------------------------------------------------

TOKENS = ("<oov>", "R", "C4.E4.G4", "A3")  # ids 0-3


def events_condition(rows, valid=None) -> np.ndarray:
    """The condition of (token id into TOKENS, duration, shift) rows, by token strings."""
    ids = np.asarray([rows], np.int32)
    valid = np.ones(ids.shape[:2], bool) if valid is None else np.asarray([valid])
    tokens = np.asarray(TOKENS, object)[ids[..., 0]]
    return conditions.from_tokens(tokens, ids[..., 2], valid,
                                  conditions.pitch_table()).numpy()[0]


def test_a_token_the_vocabulary_lacks_still_counts_by_its_pitch_names():
    got = conditions.from_tokens(np.asarray([["D4.F#4", "R"]], object), [[2, 2]],
                                 np.ones((1, 2), bool), conditions.pitch_table()).numpy()[0]
    np.testing.assert_allclose(got, [*hist(2, 6), 62 / 127, 66 / 127, 1 / 4], rtol=1e-6,
                               atol=1e-7)


def test_from_tokens_of_a_triad_a_note_and_a_rest():
    # C major triad for 4 steps, A3 for 2, a rest of 4: 2 sounding events over 10 steps
    got = events_condition([[2, 4, 4], [3, 2, 2], [1, 4, 4]])
    assert got.shape == (conditions.SIZE,)
    np.testing.assert_allclose(got[:12], hist(0, 4, 7, 9), atol=1e-7)
    np.testing.assert_allclose(got[12:], [A3 / 127, G / 127, 2 / 10], rtol=1e-6)


def test_from_tokens_the_triad_alone():
    got = events_condition([[2, 4, 4]])
    np.testing.assert_allclose(got, [*hist(0, 4, 7), C / 127, G / 127, 1 / 4], rtol=1e-6,
                               atol=1e-7)


def test_from_tokens_of_rests_only_is_all_zeros():
    np.testing.assert_array_equal(events_condition([[1, 4, 4], [1, 8, 8]]), np.zeros(15))
    np.testing.assert_array_equal(events_condition([[0, 2, 2]]), np.zeros(15))  # OOV too


def test_from_tokens_leaves_out_invalid_rows():
    alone = events_condition([[2, 4, 4], [1, 4, 4]])
    padded = events_condition([[3, 8, 8], [2, 4, 4], [1, 4, 4], [3, 1, 1]],
                              valid=[False, True, True, False])
    np.testing.assert_array_equal(padded, alone)
    np.testing.assert_allclose(alone[12:], [C / 127, G / 127, 1 / 8], rtol=1e-6)


def test_from_tokens_density_is_clipped_at_one():
    # three events at one onset (shift 0) and one step later: 3 events per step
    got = events_condition([[2, 4, 0], [3, 4, 0], [2, 1, 1]])
    assert got[conditions.DENSITY] == 1.0
    # no step at all: events over max(steps, 1)
    assert events_condition([[3, 4, 0]])[conditions.DENSITY] == 1.0


def triad_frames(steps: int = 8, sounding: int = 4) -> np.ndarray:
    frames = np.zeros((steps, pianoroll.KEYS), np.float32)
    frames[:sounding, [C - pianoroll.LOWEST, E - pianoroll.LOWEST, G - pianoroll.LOWEST]] = 1
    return frames


def test_from_frames_of_a_triad():
    got = conditions.from_frames(triad_frames()[None]).numpy()[0]
    np.testing.assert_allclose(got, [*hist(0, 4, 7), C / 127, G / 127, 1 / 8], rtol=1e-6,
                               atol=1e-7)
    # silence: all zeros
    np.testing.assert_array_equal(
        conditions.from_frames(np.zeros((1, 5, 88), np.float32)).numpy()[0], np.zeros(15))


def test_from_frames_counts_onsets_not_held_frames():
    """Active frames: a key that turns on is an onset; a repeated note after a gap counts twice."""
    frames = np.zeros((8, 88), np.float32)
    frames[0:2, C - 21] = 1  # C on, off, on again: 2 onsets
    frames[3:5, C - 21] = 1
    frames[0:8, G - 21] = 1  # G held throughout: 1 onset
    got = conditions.from_frames(frames[None]).numpy()[0]
    np.testing.assert_allclose(got[:12], hist(0, 0, 7), atol=1e-7)
    np.testing.assert_allclose(got[12:], [C / 127, G / 127, 2 / 8], rtol=1e-6)  # steps 0 and 3


def test_the_same_piece_gives_one_condition_in_every_encoding():
    """A piece as notes events, active frames and onset-sustain frames: the same condition."""
    # a C major triad, then D4 twice with a gap, then E5 over a held F3: one event per onset
    piece = make_piece([(60, 0, 1), (64, 0, 1), (67, 0, 1), (62, 1, 0.5), (62, 2, 0.5),
                        (53, 3, 1), (76, 3, 1)])
    active = pianoroll.to_frames(pianoroll.piece_to_roll(piece, 4, "active"))
    onset_sustain = pianoroll.to_frames(pianoroll.piece_to_roll(piece, 4, "onset-sustain"))
    assert onset_sustain.shape[1] == 176
    a = conditions.from_frames(active[None]).numpy()[0]
    b = conditions.from_frames(onset_sustain[None]).numpy()[0]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a[:12], hist(0, 4, 7, 2, 2, 5, 4), atol=1e-6)
    np.testing.assert_allclose(a[12:], [53 / 127, 76 / 127, 4 / 16], rtol=1e-6)
    for chords, expected in (("classes", ["C4.E4.G4", "D4", "D4", "F3.E5"]),
                             ("split", ["G4", "E4", "C4", "D4", "D4", "E5", "F3"])):
        events = notes.piece_to_events(piece, chords=chords)
        vocab = Vocabulary.build([[t for t, _, _ in events]], chords=chords)
        ids = vocab.encode(events)[None]
        tokens = np.asarray(vocab.tokens, object)[ids[..., 0]]
        c = conditions.from_tokens(tokens, ids[..., 2], np.ones(ids.shape[:2], bool),
                                   conditions.pitch_table()).numpy()[0]
        # 4 onsets over 16 steps, however many events hold them
        assert [t for t, _, _ in events] == expected
        np.testing.assert_allclose(c, a, rtol=1e-6, atol=1e-7)


def test_of_windows_batches_like_one_call():
    rng = np.random.default_rng(0)
    x = np.stack([rng.integers(0, 4, (6, 3)) for _ in range(5)]).astype(np.int32)
    x[..., 1:] = rng.integers(1, 5, (5, 6, 2))
    got = conditions.of_windows(x, "notes", TOKENS, batch=2)
    assert got.shape == (5, 15)
    np.testing.assert_allclose(got, conditions.of_windows(x, "notes", TOKENS), rtol=1e-6)
    for i in range(5):
        np.testing.assert_allclose(got[i], events_condition(x[i]), rtol=1e-6)
    frames = (rng.random((3, 7, 88)) < 0.05).astype(np.float32)
    rolls = conditions.of_windows(frames, "pianoroll", batch=2)
    np.testing.assert_allclose(rolls, conditions.from_frames(frames).numpy(), rtol=1e-6)
    empty = conditions.of_windows(np.zeros((0, 6, 3), np.int32), "notes", TOKENS)
    assert empty.shape == (0, 15) and empty.dtype == np.float32


# --- key profiles and overrides -------------------------------------------------------------------

MAJOR_WEIGHTS = np.array([4, 0, 2, 0, 3, 2, 0, 3, 0, 2, 0, 1], np.float64)  # C major, tonic first


def test_key_profiles_learn_the_major_profile_from_transposed_histograms():
    hists = np.stack([np.roll(MAJOR_WEIGHTS, t) for t in range(12)])
    hists = hists / hists.sum(1, keepdims=True)
    conds = np.concatenate([hists, np.zeros((12, 3))], 1)
    profiles = conditions.key_profiles(conds)
    assert profiles.shape == (2, 12) and profiles.dtype == np.float32
    np.testing.assert_allclose(profiles[0], MAJOR_WEIGHTS / MAJOR_WEIGHTS.sum(), rtol=1e-5)
    assert profiles[0].argmax() == 0  # tonic first
    # no minor window: the Krumhansl-Kessler minor profile stands in
    minor = KEY_PROFILES[1, 0] / KEY_PROFILES[1, 0].sum()
    np.testing.assert_allclose(profiles[1], minor, rtol=1e-5)


def test_key_profiles_without_data_are_krumhansl_kessler():
    expected = KEY_PROFILES[:, 0] / KEY_PROFILES[:, 0].sum(1, keepdims=True)
    for conds in (np.zeros((0, 15)), np.zeros((3, 15))):  # nothing, or rests only
        got = conditions.key_profiles(conds)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-6)
    assert expected[0].argmax() == 0 and expected[1].argmax() == 0


def test_override_puts_in_the_rotated_profile_and_the_density():
    profiles = conditions.key_profiles(np.zeros((0, 15)))
    rng = np.random.default_rng(1)
    condition = rng.random((4, 15)).astype(np.float32)
    key = np.array([KEY_INDEX["F#"], -1, KEY_INDEX["Am"], KEY_INDEX["C"]], np.int32)
    density = np.array([0.5, -1.0, -0.25, 3.0], np.float32)
    got = conditions.override(condition, key, density, profiles).numpy()
    assert got.shape == (4, 15)
    np.testing.assert_allclose(got[0, :12], np.roll(profiles[0], 6), rtol=1e-6)
    assert got[0, 6] == profiles[0, 0]  # the tonic entry sits at F#
    np.testing.assert_array_equal(got[1], condition[1])  # -1 and a negative density keep it
    np.testing.assert_allclose(got[2, :12], np.roll(profiles[1], 9), rtol=1e-6)
    assert got[2, 14] == condition[2, 14]
    np.testing.assert_allclose(got[3, :12], profiles[0], rtol=1e-6)
    assert got[3, 14] == 1.0  # clipped
    assert got[0, 14] == 0.5
    np.testing.assert_array_equal(got[:, 12:14], condition[:, 12:14])  # the range is kept


# --- key names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name", [("c#", "C#"), ("A minor", "Am"), ("Bb major", "Bb"),
                                        ("f#m", "F#m"), ("C", "C"), (" eb ", "Eb"),
                                        ("g MIN", "Gm"), ("Db maj", "Db"), ("am", "Am")])
def test_key_name_spells_keys_like_the_signature(text, name):
    assert key_name(text) == name
    assert name in KEY_INDEX


@pytest.mark.parametrize("text", ["H", "", "C dorian", "C# minor major", "m", "Cx", "BB"])
def test_key_name_rejects_what_is_not_a_key(text):
    with pytest.raises(InputError) as info:
        key_name(text)
    assert str(info.value).startswith("--key: ")
    assert repr(text) in str(info.value)


def test_key_index_is_tonic_plus_twelve_for_minor():
    assert len(KEY_INDEX) == 2 * len(TONICS) == 34
    assert (KEY_INDEX["C"], KEY_INDEX["F#"], KEY_INDEX["Gb"], KEY_INDEX["B"]) == (0, 6, 6, 11)
    assert (KEY_INDEX["Cm"], KEY_INDEX["Am"], KEY_INDEX["Bbm"], KEY_INDEX["A#m"]) == (12, 21, 22,
                                                                                        22)
    assert sorted(set(KEY_INDEX.values())) == list(range(24))


# --- conditional models, trained by `python -m trainer.task` --------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six two-voice pieces, half of them moved to other keys."""
    folder = tmp_path_factory.mktemp("cond-corpus")
    for k in range(6):
        melody, bass = two_voices(300 + k)
        shift = (0, 5, 0, -3, 2, 0)[k]
        write_midi_file(folder / f"piece{k}.mid", [[(p + shift, s, d) for p, s, d in melody],
                                                   [(p + shift, s, d) for p, s, d in bass]])
    return folder


@dataclasses.dataclass
class Conditional:
    name: str
    rep: str
    spec: data.DataSpec
    vocab: Vocabulary | None
    model: keras.Model  # the job's model.keras, loaded back
    x: dict  # the training inputs: {"events" | "frames", "condition"}
    profiles: np.ndarray  # key_profiles of the training conditions
    path: Path
    loaded: object
    printed: dict  # what trainer.task printed

    @property
    def steps_name(self) -> str:
        return "events" if self.rep == "notes" else "frames"

    def primer(self, i: int):
        steps = self.x[self.steps_name][i]
        if self.rep == "notes":
            return [event_string(e) for e in self.vocab.decode(steps)]
        return steps

    def generate(self, primers, steps, seeds, keys=None, density=None, temperature=1.0):
        n = len(primers)
        inputs = dict(num_steps=tf.constant([steps] * n, tf.int32),
                      temperature=tf.constant([temperature] * n, tf.float32),
                      seed=tf.constant(seeds, tf.int64),
                      key=tf.constant(keys or [""] * n, tf.string),
                      density=tf.constant(density or [-1.0] * n, tf.float32))
        if self.rep == "notes":
            inputs.update(primer=tf.constant(primers, tf.string),
                          top_k=tf.constant([0] * n, tf.int32))
        else:
            inputs.update(primer=tf.constant(np.stack(primers), tf.float32),
                          threshold=tf.constant([0.0] * n, tf.float32))
        out = self.loaded.signatures["generate"](**inputs)
        steps_out = out["tokens"].numpy().astype(str) if self.rep == "notes" \
            else out["frames"].numpy()
        return steps_out, out["condition"].numpy()


def run_task(argv) -> tuple[int, str, str]:
    return run_main(task.main, argv)


@pytest.fixture(scope="module")
def zoo(corpus, tmp_path_factory):
    """`zoo(name, rep)`: a conditional model trained by trainer.task for two epochs, exported
    and loaded back; each trained once, on first use."""
    root = tmp_path_factory.mktemp("cond-jobs")
    cache = {}

    def get(name, rep) -> Conditional:
        if (name, rep) not in cache:
            job = root / f"job-{name}-{rep}"
            rc, out, err = run_task([
                "--model", name, "--representation", rep, "--data", corpus, "--epochs", 2,
                "--seq-len", SEQ_LEN, "--batch-size", 16, "--seed", 3,
                "--hparams", TINY[name] + ",condition=true", "--sample-every", 0,
                "--job-dir", job, "--export-dir", root / "exports",
                "--export-name", f"{name}-{rep}"])
            assert rc == 0, err[-3000:]
            printed = json.loads(out.strip().splitlines()[-1])
            folder = job / "data"
            spec = data.spec_of(folder)
            vocab = Vocabulary.load(folder / "vocab.json") if rep == "notes" else None
            config = Config(model=name, representation=rep, seq_len=SEQ_LEN,
                            hparams={"condition": True}, export_dir="")
            x, _ = MODELS[name].arrays(folder, "train", spec, config)
            model = keras.saving.load_model(job / "model.keras",
                                            custom_objects=MODELS[name].custom_objects)
            path = Path(printed["export"])
            cache[name, rep] = Conditional(
                name, rep, spec, vocab, model, x, conditions.key_profiles(x["condition"]),
                path, tf.saved_model.load(str(path)), printed)
        return cache[name, rep]

    return get


CASES = [("lstm", "notes"), ("attention_lstm", "pianoroll")]
IDS = [f"{n}-{r}" for n, r in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def trained(request, zoo) -> Conditional:
    return zoo(*request.param)


def test_family_arrays_give_the_condition_of_each_window(trained):
    t = trained
    x = t.x
    assert set(x) == {t.steps_name, "condition"}
    assert x["condition"].shape == (len(x[t.steps_name]), conditions.SIZE)
    tokens = t.vocab.tokens if t.rep == "notes" else None
    np.testing.assert_allclose(x["condition"],
                               conditions.of_windows(x[t.steps_name], t.rep, tokens), rtol=1e-6)
    assert (x["condition"][:, :12].sum(1) > 0.99).mean() > 0.9  # most windows sound something
    assert set(t.model.input) == {t.steps_name, "condition"}
    assert next_step_export.is_conditional(t.model)


def test_signatures_and_metadata_of_a_conditional_model(trained):
    t = trained
    assert set(t.loaded.signatures) == {"serving_default", "generate", "metadata",
                                        "log_likelihood"}
    meta = Composer(t.loaded).metadata()
    assert meta["conditional"] == 1 and meta["model"] == t.name and meta["window"] == SEQ_LEN
    assert meta["inputs"] == INPUTS[t.rep]
    signature = t.loaded.signatures["generate"]
    assert set(signature.structured_input_signature[1]) == set(INPUTS[t.rep].split(","))
    outputs = signature.structured_outputs
    assert set(outputs) == {"tokens" if t.rep == "notes" else "frames", "condition"}
    assert outputs["condition"].shape.as_list() == [None, conditions.SIZE]


def primer_condition(t: Conditional, primer) -> np.ndarray:
    """The condition of one primer by `trainer.conditions`, outside the graph."""
    if t.rep == "notes":
        events = [parse_event_string(s) for s in primer]
        return conditions.from_tokens(np.asarray([[e[0] for e in events]], object),
                                      [[e[2] for e in events]], np.ones((1, len(events)), bool),
                                      conditions.pitch_table()).numpy()[0]
    return conditions.from_frames(np.asarray(primer)[None]).numpy()[0]


def test_the_condition_is_the_primers_own_without_overrides(trained):
    t = trained
    primers = [t.primer(0), t.primer(3)]
    steps, condition = t.generate(primers, 4, [1, 2])
    assert condition.shape == (2, conditions.SIZE) and condition.dtype == np.float32
    for i, primer in enumerate(primers):
        np.testing.assert_allclose(condition[i], primer_condition(t, primer), rtol=1e-6,
                                   atol=1e-7)
        np.testing.assert_allclose(condition[i], t.x["condition"][3 * i], rtol=1e-6, atol=1e-7)
    assert steps.shape[:2] == (2, 4)


def test_a_key_puts_in_the_learned_profile_and_density_goes_to_index_14(trained):
    t = trained
    primer = t.primer(1)
    own = primer_condition(t, primer)
    _, condition = t.generate([primer, primer, primer], 3, [5, 5, 5], keys=["F#", "Ebm", ""],
                              density=[-1.0, 0.3, 0.0])
    np.testing.assert_allclose(condition[0, :12], np.roll(t.profiles[0], 6), rtol=1e-5)
    assert condition[0, :12].argmax() == 6  # the learned major profile's tonic, at F#
    np.testing.assert_allclose(condition[1, :12], np.roll(t.profiles[1], 3), rtol=1e-5)
    np.testing.assert_allclose(condition[2, :12], own[:12], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(condition[:, 14], [own[14], 0.3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(condition[:, 12:14], np.stack([own[12:14]] * 3), rtol=1e-6)


def test_learned_profiles_come_from_the_training_windows(zoo):
    """The pieces are in major keys (C, F, A, D): the exported major profile is the data's, not
    Krumhansl's, and its tonic entry is the largest."""
    t = zoo("lstm", "notes")
    krumhansl = KEY_PROFILES[0, 0] / KEY_PROFILES[0, 0].sum()
    assert not np.allclose(t.profiles[0], krumhansl, atol=1e-3)
    _, condition = t.generate([t.primer(0)], 1, [1], keys=["C"])
    np.testing.assert_allclose(condition[0, :12], t.profiles[0], rtol=1e-5)
    assert condition[0, :12].argmax() == 0
    assert condition[0, [1, 3, 6, 8, 10]].max() < condition[0, [0, 2, 4, 5, 7, 9, 11]].min()


def test_same_seed_same_output_other_seed_other_output(trained):
    t = trained
    temperature = 1.0 if t.rep == "notes" else 3.0  # some keys on
    first, c1 = t.generate([t.primer(2)], 10, [7], keys=["G"], density=[0.4],
                           temperature=temperature)
    again, c2 = t.generate([t.primer(2)], 10, [7], keys=["G"], density=[0.4],
                           temperature=temperature)
    other, _ = t.generate([t.primer(2)], 10, [8], keys=["G"], density=[0.4],
                          temperature=temperature)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(first, other)


def test_the_condition_changes_what_is_drawn(zoo):
    """One primer and seed, two conditions: two continuations. (The two-epoch piano-roll model
    barely reads its condition yet: its draws do not move, so only the notes model is asked.)"""
    t = zoo("lstm", "notes")
    outs = [t.generate([t.primer(2)], 10, [7], keys=[key], density=[density])[0]
            for key, density in (("C", 0.1), ("F#m", 0.9))]
    assert not np.array_equal(*outs)


def test_rows_with_other_keys_get_their_own_conditions(trained):
    t = trained
    temperature = 1.0 if t.rep == "notes" else 3.0
    primers = [t.primer(0), t.primer(4)]
    batch, condition = t.generate(primers, 6, [1, 2], keys=["D", "Bm"], density=[0.2, -1.0],
                                  temperature=temperature)
    np.testing.assert_allclose(condition[0, :12], np.roll(t.profiles[0], 2), rtol=1e-5)
    np.testing.assert_allclose(condition[1, :12], np.roll(t.profiles[1], 11), rtol=1e-5)
    assert condition[0, 14] == pytest.approx(0.2)
    assert condition[1, 14] == pytest.approx(primer_condition(t, primers[1])[14], rel=1e-6)
    for i, (key, density) in enumerate((("D", 0.2), ("Bm", -1.0))):
        alone, own = t.generate([primers[i]], 6, [i + 1], keys=[key], density=[density],
                                temperature=temperature)
        np.testing.assert_array_equal(batch[i], alone[0], err_msg=f"row {i}")
        np.testing.assert_array_equal(condition[i], own[0])


ERRORS = {
    "unknown key": (dict(keys=["H"]), "key: unknown; use C, C#, Db, ..., B for major and Cm, "
                                      "..., Bm for minor"),
    "lower-case key": (dict(keys=["f#"]), "key: unknown; use C, C#, Db, ..., B for major and "
                                          "Cm, ..., Bm for minor"),
}


@pytest.mark.parametrize("kwargs, message", ERRORS.values(), ids=ERRORS.keys())
def test_bad_keys_are_invalid_argument_errors_of_one_line(zoo, kwargs, message):
    t = zoo("lstm", "notes")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        t.generate([t.primer(0)], 3, [1], **kwargs)
    assert error_message(info.value.message) == message


def test_density_above_one_is_an_invalid_argument_error(trained):
    t = trained
    with pytest.raises(tf.errors.InvalidArgumentError, match="density must be <= 1"):
        t.generate([t.primer(0)], 3, [1], density=[1.5])
    # exactly 1 is fine
    _, condition = t.generate([t.primer(0)], 3, [1], density=[1.0])
    assert condition[0, 14] == 1.0


def test_the_density_error_line_is_the_signatures_own_words(zoo):
    t = zoo("lstm", "notes")
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        t.generate([t.primer(0)], 3, [1], density=[1.5])
    assert error_message(info.value.message) == (
        "density must be <= 1 (note events per grid step; < 0 keeps the primer density)")


def test_key_and_density_need_one_value_per_row(zoo):
    t = zoo("lstm", "notes")
    with pytest.raises(tf.errors.InvalidArgumentError, match="key: one value per row"):
        t.generate([t.primer(0)], 3, [1], keys=["C", "D"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="density: one value per row"):
        t.generate([t.primer(0)], 3, [1], density=[0.1, 0.2])


# --- the in-graph loop against the NumPy reference ------------------------------------------------

@pytest.mark.parametrize("key, density", [("", -1.0), ("F#", 0.4), ("Am", -1.0)])
def test_in_graph_loop_matches_the_numpy_reference(trained, key, density):
    t = trained
    temperature = 1.0 if t.rep == "notes" else 3.0
    seed = 17 + len(key)
    primer = t.primer(2)
    got, condition = t.generate([primer], STEPS, [seed], keys=[key], density=[density],
                                temperature=temperature)
    if t.rep == "notes":
        ids = t.vocab.encode([parse_event_string(s) for s in primer])
        steps = sampling.sample(t.model, t.spec, {"events": ids, "condition": condition[0]},
                                STEPS, temperature, seed)
        expected = np.asarray([event_string(e) for e in t.vocab.decode(steps)])
        assert len(set(expected.tolist())) >= 3, expected
    else:
        expected = sampling.sample(t.model, t.spec, {"frames": primer, "condition": condition[0]},
                                   STEPS, temperature, seed)
        assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(got[0], expected)


def test_log_likelihood_of_a_conditional_notes_model(zoo):
    t = zoo("lstm", "notes")
    events = t.primer(5)
    out = t.loaded.signatures["log_likelihood"](events=tf.constant([events]))
    length = len(events)
    for key in ("nll", "token_nll", "duration_nll", "shift_nll", "counted", "oov"):
        assert out[key].shape == (1, length - 1), key
    # teacher forcing by hand: the Keras model over the events but the last, conditioned on all
    ids = t.vocab.encode([parse_event_string(s) for s in events])[None]
    condition = primer_condition(t, events)[None]
    logits = t.model({"events": ids[:, :-1], "condition": condition}, training=False)
    expected = sum(tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:, i], logits[f])
                   for i, f in enumerate(data.NOTE_FIELDS)).numpy()
    counted = out["counted"].numpy()
    assert counted.sum() > 0
    np.testing.assert_allclose(out["nll"].numpy(), np.where(counted > 0, expected, 0.0),
                               rtol=1e-4, atol=1e-5)


def test_the_likelihoods_pass_is_the_keras_models_output(zoo):
    """The teacher-forced pass of `log_likelihood` (`decoders.Recurrent.every_position`: the
    attention over a band of its width, in memory linear in the length) gives what the Keras
    model gives, over a sequence three times the attention's width."""
    t = zoo("attention_lstm", "pianoroll")
    width = t.model.get_layer("attention").attention_width
    steps = np.concatenate([t.x["frames"][:2]] * (3 * width // SEQ_LEN + 1), 1)[:, :3 * width]
    condition = np.stack([primer_condition(t, t.primer(i)) for i in range(2)])
    want = t.model({"frames": steps, "condition": condition}, training=False)
    got = decoders.Recurrent(t.model, t.spec).every_position(tf.constant(steps),
                                                             tf.constant(condition))
    tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                          got, want)


# --- requests and the trainer.generate CLI --------------------------------------------------------

@pytest.fixture(scope="module")
def unconditional_meta(zoo):
    """The metadata of an unconditional lstm (built, not trained: metadata only)."""
    t = zoo("lstm", "notes")
    hp = {**MODELS["lstm"].defaults, "units": 8, "layers": 1, "dense": 8, "embedding": 8,
          "condition": False}
    model = MODELS["lstm"].build(t.spec, hp, SEQ_LEN)
    meta = export.module_for(model, "lstm", t.spec, SEQ_LEN, t.vocab).metadata_values()
    assert meta["conditional"] == 0
    return meta


@pytest.mark.parametrize("kwargs, flag", [(dict(key="C"), "--key"), (dict(density=0.3),
                                                                       "--density"),
                                          (dict(key="Am", density=0.0), "--key")])
def test_key_and_density_for_an_unconditional_model_are_input_errors(unconditional_meta,
                                                                       kwargs, flag):
    with pytest.raises(InputError) as info:
        contract.generate_inputs(["C4|2|2"], unconditional_meta, 8, **kwargs)
    assert str(info.value) == (f"{flag}: lstm is not conditional (train it with --hparams "
                               "condition=true)")
    # without them the request is fine, and holds no key or density
    inputs = contract.generate_inputs(["C4|2|2"], unconditional_meta, 8)
    assert set(inputs) == {"primer", "num_steps", "temperature", "top_k", "seed"}


def test_generate_inputs_of_a_conditional_model(zoo):
    t = zoo("lstm", "notes")
    meta = Composer(t.loaded).metadata()
    inputs = contract.generate_inputs(["C4|2|2"], meta, 8, key="c# minor", density=0.3)
    assert list(inputs) == INPUTS["notes"].split(",")
    assert inputs["key"].tolist() == ["C#m"] and inputs["density"].tolist() == [np.float32(0.3)]
    assert inputs["primer"].shape == (1, SEQ_LEN) and inputs["primer"][0, -1] == "C4|2|2"
    plain = contract.generate_inputs(["C4|2|2"], meta, 8)
    assert plain["key"].tolist() == [""] and plain["density"].tolist() == [-1.0]
    with pytest.raises(InputError, match=r"^--key: 'H' is not a key"):
        contract.generate_inputs(["C4|2|2"], meta, 8, key="H")


def test_generate_cli_in_a_key_at_a_density(zoo, tmp_path, capsys):
    t = zoo("lstm", "notes")
    primer_path = write_midi_file(tmp_path / "primer.mid", [MELODY, BASS])
    out = tmp_path / "out.mid"
    rc = generate.main(["--model", str(t.path.parent), "--primer", str(primer_path),
                        "--key", "Am", "--density", "0.3", "--steps", "20", "--seed", "4",
                        "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert str(t.path) in captured.out
    (piece,) = read_file(out)
    # what the signature gives for the same request, written through the same path
    meta = Composer(t.loaded).metadata()
    primer = contract.primer_steps(contract.read_primer(str(primer_path)), meta)
    inputs = contract.generate_inputs(primer, meta, 20, seed=4, key="Am", density=0.3)
    outputs = t.loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_allclose(outputs["condition"].numpy()[0, :12], np.roll(t.profiles[1], 9),
                               rtol=1e-5)
    assert outputs["condition"].numpy()[0, 14] == pytest.approx(0.3)
    expected, primer_end = contract.to_piece(primer, outputs, meta, 120.0)
    assert len(piece) == len(expected) > 0 and piece.end > primer_end
    assert grid_notes(piece) == grid_notes(expected)


@pytest.mark.parametrize("flags, words", [
    (["--key", "H"], ["--key: 'H' is not a key"]),
    (["--density", "1.5"], ["--density: 1.5 is not in 0-1"]),
])
def test_generate_cli_bad_key_or_density_is_one_line(zoo, tmp_path, capsys, flags, words):
    t = zoo("lstm", "notes")
    primer_path = write_midi_file(tmp_path / "primer.mid", [MELODY, BASS])
    out = tmp_path / "out.mid"
    rc = generate.main(["--model", str(t.path.parent), "--primer", str(primer_path), *flags,
                        "--steps", "20", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in captured.err and not out.exists()


def test_generate_cli_key_for_an_unconditional_model_is_one_line(tmp_path, capsys, zoo):
    t = zoo("lstm", "notes")
    hp = {**MODELS["lstm"].defaults, "units": 8, "layers": 1, "dense": 8, "embedding": 8,
          "condition": False}
    model = MODELS["lstm"].build(t.spec, hp, SEQ_LEN)
    path = export.export(model, "lstm", t.spec, SEQ_LEN, tmp_path / "exports", vocab=t.vocab)
    primer_path = write_midi_file(tmp_path / "primer.mid", [MELODY, BASS])
    rc = generate.main(["--model", str(path), "--primer", str(primer_path), "--key", "Am",
                        "--steps", "4", "--out", str(tmp_path / "out.mid")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2
    assert err == ["error: --key: lstm is not conditional (train it with --hparams "
                   "condition=true)"]


def test_models_exported_before_metadata_listed_inputs_still_get_requests():
    old = {"model": "lstm", "representation": "notes", "window": 4}
    inputs = contract.generate_inputs(["C4|4|4"], old, 8, seed=1)
    assert list(inputs) == ["primer", "num_steps", "temperature", "top_k", "seed"]
    roll = {"model": "seq2seq", "representation": "pianoroll", "window": 4}
    assert list(contract.generate_inputs(np.zeros((2, 88)), roll, 8)) == [
        "primer", "num_steps", "temperature", "threshold", "seed"]


@pytest.mark.parametrize("density", [-0.2, 1.5])
def test_a_density_outside_zero_to_one_is_refused_before_any_request(density):
    meta = {"model": "lstm", "representation": "notes", "window": 4,
            "inputs": INPUTS["notes"]}
    with pytest.raises(InputError, match=r"^--density: .* is not in 0-1"):
        contract.generate_inputs(["C4|4|4"], meta, 8, density=density)


def test_interpolate_takes_no_key_density_or_form(tmp_path, capsys):
    rc = generate.main(["--model", str(tmp_path), "--interpolate", "b.mid", "--key", "C",
                        "--out", str(tmp_path / "x.mid")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: --interpolate: blends two primers; it takes no --key, "
                               "--density or --form"]


def test_a_seq_to_one_lstm_can_read_a_condition():
    spec = data.DataSpec("notes", vocab_size=10, max_duration=8, max_shift=8)
    hp = {**MODELS["lstm"].defaults, "units": 8, "layers": 1, "dense": 8, "condition": True}
    model = MODELS["lstm"].build(spec, hp, 6, last_only=True)
    out = model({"events": np.ones((2, 6, 3), np.int32),
                 "condition": np.zeros((2, conditions.SIZE), np.float32)})
    assert tuple(out["token"].shape) == (2, 10)
