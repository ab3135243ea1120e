"""SavedModel export and in-graph generation: every family exported and loaded back, its three
signatures, determinism and batch independence of the per-row RNG, the in-graph loops against
the NumPy step-by-step reference, atomic versioned export and models.config, bad requests, and
the `trainer.task --export-dir` and `trainer.generate` CLIs end to end.

Everything is real: MIDI files written with mido, datasets built by `preprocessing.dataset`, tiny
Keras models trained for two epochs (so logits are not uniform and a seed does not decide a draw
on its own; the session's zoo in tests/zoo.py), `tf.saved_model.load` of the exported folders,
and the CLIs run in this process and once as a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from preprocessing.notes import OOV, event_string, parse_event_string
from preprocessing.readers import read_file
from serving.transports import resolve
from tests.conftest import BASS, MELODY, write_midi_file
from tests.zoo import SEQ_LEN, Trained, case_id, hparams_flag, run_main
from trainer import data as data_lib
from trainer import export, generate, rng, sampling, task
from trainer.models import seq2seq

REPO = Path(__file__).resolve().parents[1]
STEPS = 12

# (family, representation, encoding): every family, both representations of the next-step ones
CASES = [("lstm", "notes", "active"), ("lstm", "pianoroll", "active"),
         ("bilstm", "notes", "active"), ("bilstm", "pianoroll", "active"),
         ("attention_lstm", "notes", "active"), ("attention_lstm", "pianoroll", "active"),
         ("seq2seq", "pianoroll", "active"), ("midinet", "bars", "active"),
         ("lstm", "pianoroll", "onset-sustain")]
IDS = [case_id(*c) for c in CASES]
SIGNATURE_INPUTS = {
    "notes": ({"primer", "num_steps", "temperature", "top_k", "seed"}, {"context"}),
    "pianoroll": ({"primer", "num_steps", "temperature", "threshold", "seed"}, {"context"}),
    "bars": ({"chords", "num_bars", "seed"}, {"chord", "previous", "seed"}),
}
OUTPUT = {"notes": "tokens", "pianoroll": "frames", "bars": "bars"}


# --- the session's zoo (tests/zoo.py): real MIDI files → datasets → trained, exported models -----

@pytest.fixture(params=CASES, ids=IDS)
def trained(request, zoo) -> Trained:
    return zoo(*request.param)


# --- requests: one row per piece, batched into the `generate` signature ---------------------------

@dataclasses.dataclass
class Row:
    """One row of a `generate` request. `knob` is top_k (notes) or threshold (piano rolls);
    `left_pad` puts a notes row's "" padding before its events instead of after them."""

    primer: object
    steps: int
    seed: int
    temperature: float = 1.0
    knob: float = 0
    left_pad: bool = False


def call_generate(t: Trained, rows: list[Row], loaded=None) -> np.ndarray:
    """The `generate` signature on a batch of rows: tokens as str [B, n], frames or bars."""
    signature = (loaded or t.loaded).signatures["generate"]
    steps = tf.constant([r.steps for r in rows], tf.int32)
    seeds = tf.constant([r.seed for r in rows], tf.int64)
    if t.rep == "bars":
        out = signature(chords=tf.constant(np.stack([r.primer for r in rows]), tf.float32),
                        num_bars=steps, seed=seeds)
        return out["bars"].numpy()
    temperature = tf.constant([r.temperature for r in rows], tf.float32)
    if t.rep == "notes":
        width = max(len(r.primer) for r in rows)
        primer = [[""] * (width - len(r.primer)) + list(r.primer) if r.left_pad
                  else list(r.primer) + [""] * (width - len(r.primer)) for r in rows]
        out = signature(primer=tf.constant(primer, tf.string), num_steps=steps,
                        temperature=temperature, seed=seeds,
                        top_k=tf.constant([int(r.knob) for r in rows], tf.int32))
        return decode(out["tokens"])
    out = signature(primer=tf.constant(np.stack([r.primer for r in rows]), tf.float32),
                    num_steps=steps, temperature=temperature, seed=seeds,
                    threshold=tf.constant([float(r.knob) for r in rows], tf.float32))
    return out["frames"].numpy()


def decode(tokens) -> np.ndarray:
    return np.asarray([[s.decode() for s in row] for row in np.asarray(tokens)], dtype=object)


def reference(t: Trained, row: Row):
    """The NumPy step-by-step continuation of one row: `Family.sample` where it takes the
    settings, else `sampling.sample`."""
    if t.rep == "bars":
        primer = {"chord": row.primer, "previous": np.zeros((16, 128, 1), np.float32)}
        return t.family.sample(t.model, t.spec, primer, 16 * row.steps, seed=row.seed,
                               seq_len=SEQ_LEN)
    window = SEQ_LEN if t.family.last_only else None
    if t.rep == "notes":
        ids = t.vocab.encode([parse_event_string(s) for s in row.primer])
        if row.knob:
            steps = sampling.sample(t.model, t.spec, ids, row.steps, row.temperature, row.seed,
                                    window, top_k=int(row.knob))
        else:
            steps = t.family.sample(t.model, t.spec, ids, row.steps, row.temperature, row.seed,
                                    SEQ_LEN)
        return np.asarray([event_string(e) for e in t.vocab.decode(steps)], dtype=object)
    if row.knob:
        return sampling.sample(t.model, t.spec, row.primer, row.steps, row.temperature,
                               row.seed, window, threshold=float(row.knob))
    return t.family.sample(t.model, t.spec, row.primer, row.steps, row.temperature, row.seed,
                           SEQ_LEN)


def blank(t: Trained, out, row_length: int):
    """What a row holds past its own num_steps: "" for notes, zeros for frames and bars."""
    tail = out[row_length:]
    if t.rep == "notes":
        return all(s == "" for s in tail)
    return not np.any(tail)


def metadata(loaded) -> dict:
    out = {}
    for key, value in loaded.signatures["metadata"](request=tf.constant([0, 0])).items():
        assert value.shape == (2,)  # one row per request row: batchable like the others
        value = value.numpy()[0]
        out[key] = value.decode() if isinstance(value, bytes) else value.item()
    return out


# --- 1. every family exports, loads back and answers its three signatures -------------------------

def test_signatures_and_metadata(trained):
    t = trained
    assert {"serving_default", "generate", "metadata"} <= set(t.loaded.signatures)
    gen_inputs, default_inputs = SIGNATURE_INPUTS[t.rep]
    assert set(t.loaded.signatures["generate"].structured_input_signature[1]) == gen_inputs
    assert set(t.loaded.signatures["serving_default"].structured_input_signature[1]) == \
        default_inputs
    assert set(t.loaded.signatures["generate"].structured_outputs) == {OUTPUT[t.rep]}
    assert t.path.name == "1" and t.path.parent.name == t.id
    meta = metadata(t.loaded)
    expected = {"model": t.name, "representation": t.rep, "steps_per_quarter": 4,
                "encoding": t.encoding, "window": SEQ_LEN, "max_steps": 4096,
                "vocab_size": len(t.vocab.tokens) if t.rep == "notes" else 0}
    assert {k: meta[k] for k in expected} == expected
    assert set(meta["inputs"].split(",")) == gen_inputs and meta["conditional"] == 0
    assert meta["signatures"].split(",") == sorted(t.loaded.signatures)
    if t.rep == "notes":
        assert (meta["max_duration"], meta["max_shift"]) == (32, 32)
        assert len(t.vocab.tokens) == t.spec.vocab_size > 2
    if t.rep == "pianoroll":
        assert meta["keys"] == (176 if t.encoding == "onset-sustain" else 88)


def test_generate_shapes_dtypes_and_values(trained):
    t = trained
    rows = [Row(t.primer(0), 7, seed=1), Row(t.primer(1), 3, seed=2)]
    raw = call_generate(t, rows)
    if t.rep == "notes":
        assert t.loaded.signatures["generate"].structured_outputs["tokens"].dtype == tf.string
        assert raw.shape == (2, 7)
        vocabulary = set(t.vocab.tokens)
        for token_string in raw[0].tolist() + raw[1, :3].tolist():
            token, duration, shift = parse_event_string(token_string)
            assert token in vocabulary and token != OOV, token_string
            assert 1 <= duration <= t.spec.max_duration, token_string
            assert 0 <= shift <= t.spec.max_shift, token_string
    elif t.rep == "pianoroll":
        assert raw.dtype == np.float32 and raw.shape == (2, 7, t.spec.keys)
        assert set(np.unique(raw)) <= {0.0, 1.0}
    else:
        assert raw.dtype == np.float32 and raw.shape == (2, 7, 16, 128)
        assert set(np.unique(raw)) <= {0.0, 1.0}
        assert set(np.unique(raw.sum(axis=-1))) <= {0.0, 1.0}  # one pitch or none per step
        assert raw[0].sum() > 0
    for row, out in zip(rows, raw):
        assert blank(t, out, row.steps)


def test_serving_default_gives_next_step_distributions(trained):
    t = trained
    signature = t.loaded.signatures["serving_default"]
    if t.rep == "notes":
        contexts = [t.primer(0), t.primer(2)]
        out = {k: v.numpy() for k, v in signature(context=tf.constant(contexts)).items()}
        assert set(out) == {f"{f}_probs" for f in data_lib.NOTE_FIELDS}
        ids = np.stack([t.vocab.encode([parse_event_string(s) for s in c]) for c in contexts])
        logits = t.model(ids, training=False)
        for field, classes in t.spec.classes.items():
            probs = out[f"{field}_probs"]
            assert probs.shape == (2, classes)
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
            expected = tf.nn.softmax(sampling_last(logits[field])).numpy()
            np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
        # trained: the token head is far from the uniform distribution
        assert out["token_probs"].max() > 2.0 / t.spec.vocab_size
        return
    if t.rep == "pianoroll":
        context = np.stack([t.primer(0), t.primer(2)])
        probs = signature(context=tf.constant(context))["probs"].numpy()
        if t.name == "seq2seq":  # the first decoded frame after the context; a NADE head's
            # keys given the keys below them in the frame they draw at threshold 0.5
            start = seq2seq.decoder_inputs(np.zeros((2, 1, t.spec.keys), np.float32))
            drawn = (probs > 0.5)[:, None].astype(np.float32)
            logits = t.model({"encoder": context, "decoder": start, "target": drawn},
                             training=False)
        else:
            logits = t.model(context, training=False)
        expected = tf.sigmoid(sampling_last(logits)).numpy()
        assert probs.shape == (2, t.spec.keys)
    else:
        chord = np.stack([t.primer(0)[0], t.primer(1)[1]])
        previous = np.zeros((2, 16, 128), np.float32)
        previous[1, np.arange(16), 60 + np.arange(16)] = 1
        seeds = np.array([3, 4], np.int64)
        probs = signature(chord=tf.constant(chord), previous=tf.constant(previous),
                          seed=tf.constant(seeds))["probs"].numpy()
        z = rng.normal_np(seeds, 0, 0, t.model.noise)
        expected = t.model.generate(z, chord, previous[..., None]).numpy()[..., 0]
        assert probs.shape == (2, 16, 128)
        other = signature(chord=tf.constant(chord), previous=tf.constant(previous),
                          seed=tf.constant(seeds + 100))["probs"].numpy()
        assert not np.array_equal(probs, other)  # the seed draws the noise
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "bilstm", "attention_lstm"])
def test_serving_default_skips_padding_like_generate(zoo, name):
    """A batch of contexts of different lengths is padded with "" (padding to `generate` and to
    the parser both signatures share): a padded row gets the distribution it gets alone."""
    t = zoo(name, "notes")
    signature = t.loaded.signatures["serving_default"]
    long, short = t.primer(0), t.primer(4, 5)
    alone = signature(context=tf.constant([short]))
    batch = signature(context=tf.constant([long, short + [""] * (len(long) - len(short))]))
    for field in data_lib.NOTE_FIELDS:
        np.testing.assert_allclose(batch[f"{field}_probs"].numpy()[1],
                                   alone[f"{field}_probs"].numpy()[0], rtol=1e-5, atol=1e-6,
                                   err_msg=field)


def sampling_last(logits):
    """Logits of the last position ([B, T, C] outputs) or the outputs themselves ([B, C])."""
    return logits[:, -1] if len(logits.shape) == 3 else logits


def test_generate_runs_its_loop_in_the_graph_without_cudnn_kernels(trained):
    """The SavedModel serves on CPUs: no CudnnRNN* op in any signature's graph or the functions
    it calls; the sampling loop is a While op in the graph."""

    def op_types(graph_def):
        ops = {node.op for node in graph_def.node}
        for function in graph_def.library.function:
            ops |= {node.op for node in function.node_def}
        return ops

    every = set()
    for name, signature in trained.loaded.signatures.items():
        ops = op_types(signature.graph.as_graph_def())
        assert not [op for op in ops if op.startswith("Cudnn")], name
        every |= ops
    generate_ops = op_types(trained.loaded.signatures["generate"].graph.as_graph_def())
    assert generate_ops & {"While", "StatelessWhile"}
    assert "MatMul" in every or "BatchMatMulV2" in every  # the graph was really inspected
    # and the file on disk
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((trained.path / "saved_model.pb").read_bytes())
    for meta_graph in saved.meta_graphs:
        assert not [op for op in op_types(meta_graph.graph_def) if op.startswith("Cudnn")]


# --- 2. determinism and batch independence --------------------------------------------------------

def test_same_seed_same_output_across_calls_and_reloads(trained):
    t = trained
    rows = [Row(t.primer(0), 6, seed=11), Row(t.primer(3), 6, seed=12)]
    first = call_generate(t, rows)
    np.testing.assert_array_equal(first, call_generate(t, rows))
    again = tf.saved_model.load(str(t.path))
    np.testing.assert_array_equal(first, call_generate(t, rows, loaded=again))
    other = call_generate(t, [dataclasses.replace(r, seed=r.seed + 1000) for r in rows])
    for a, b in zip(first, other):
        assert not np.array_equal(a, b)


def test_a_row_is_the_same_alone_or_in_a_batch(trained):
    """The per-row RNG: a row's output depends on its own inputs only, in any batch; rows with
    fewer steps are blank past their own length."""
    t = trained
    if t.rep == "notes":
        rows = [Row(t.primer(0), 9, seed=1, temperature=1.0, knob=0),
                Row(t.primer(5, 5), 4, seed=2, temperature=0.6, knob=3),
                Row(t.primer(9, 6), 7, seed=3, temperature=1.4, knob=0, left_pad=True),
                Row(t.primer(0), 3, seed=4, temperature=0.8, knob=1)]
    elif t.rep == "pianoroll":
        # temperatures > 1: the trained models' keys are mostly off
        rows = [Row(t.primer(0), 9, seed=1, temperature=2.0),
                Row(t.primer(5), 4, seed=2, temperature=1.5),
                Row(t.primer(9), 7, seed=3, temperature=3.0),
                Row(t.primer(0), 6, seed=4, temperature=2.0),
                Row(t.primer(3), 5, seed=5, temperature=3.0,
                    knob=0 if t.name == "seq2seq" else 0.15)]  # threshold
    else:
        rows = [Row(t.primer(0), 3, seed=1), Row(t.primer(1), 1, seed=2),
                Row(t.primer(2), 2, seed=3), Row(t.primer(0), 2, seed=4)]
    batch = call_generate(t, rows)
    assert len(batch) == len(rows) and batch.shape[1] == max(r.steps for r in rows)
    for i, row in enumerate(rows):
        alone = call_generate(t, [dataclasses.replace(row, left_pad=False)])[0]
        assert alone.shape[0] == row.steps
        np.testing.assert_array_equal(batch[i, :row.steps], alone, err_msg=f"row {i}")
        assert blank(t, batch[i], row.steps), f"row {i} past its num_steps"
    overlap = rows[3].steps
    if t.rep != "notes":
        assert batch[0].any() and batch[3].any(), "nothing drawn: the comparison would be empty"
    assert not np.array_equal(batch[0, :overlap], batch[3, :overlap])  # same primer, other seed


def test_outputs_depend_on_the_model_not_only_on_the_seed(zoo):
    """Trained models are not uniform: with one primer and seed, each family draws its own."""
    for rep, names in (("notes", ("lstm", "bilstm", "attention_lstm")),
                       ("pianoroll", ("lstm", "bilstm", "attention_lstm", "seq2seq"))):
        outs = {}
        for name in names:
            t = zoo(name, rep)
            primer = zoo("lstm", rep).primer(2)
            temperature = 2.0 if rep == "pianoroll" else 1.0  # some keys on
            outs[name] = call_generate(t, [Row(primer, STEPS, seed=5, temperature=temperature)])[0]
        for a in names:
            for b in names:
                if a < b:
                    assert not np.array_equal(outs[a], outs[b]), (rep, a, b)


# --- 3. the in-graph loops against the NumPy step-by-step reference -------------------------------

SETTINGS = {
    "notes": [(1.0, 0), (0.6, 5), (1.5, 2)],  # (temperature, top_k)
    "pianoroll": [(1.5, 0.0), (3.0, 0.0), (3.0, 0.15)],  # (temperature, threshold)
    "bars": [(1.0, 0), (1.0, 0), (1.0, 0)],  # midinet: seeds only
}


@pytest.mark.parametrize("setting", [0, 1, 2])
def test_in_graph_loop_matches_the_numpy_reference(trained, setting):
    t = trained
    temperature, knob = SETTINGS[t.rep][setting]
    if t.name == "seq2seq" and knob:  # Seq2Seq.sample draws every key; no threshold
        temperature, knob = 0.7, 0.0
    steps = 6 if t.rep == "bars" else STEPS  # 6 bars over 4 chords: the chords cycle
    row = Row(t.primer(setting + 1), steps, seed=17 + 31 * setting, temperature=temperature,
              knob=knob)
    got = call_generate(t, [row])[0]
    expected = reference(t, row)
    # the draws are not trivial: several distinct tokens, frames with some keys on and some off
    if t.rep == "notes":
        assert len(set(expected)) >= 3, expected
    elif t.rep == "pianoroll":
        assert 0 < expected.sum() < expected.size, "all frames alike"
    else:
        assert len(set(np.argmax(expected, -1)[expected.max(-1) > 0].tolist())) >= 2
    np.testing.assert_array_equal(got, expected)


def test_large_and_negative_seeds_draw_like_the_numpy_twin(zoo):
    """Every bit of an int64 seed counts, in the graph as in NumPy."""
    t = zoo("attention_lstm", "notes")
    rows = [Row(t.primer(1), 8, seed=2**40 + 5), Row(t.primer(1), 8, seed=5),
            Row(t.primer(2), 8, seed=-3), Row(t.primer(3), 8, seed=2**63 - 1)]
    batch = call_generate(t, rows)
    for row, out in zip(rows, batch):
        np.testing.assert_array_equal(out, reference(t, row), err_msg=str(row.seed))
    assert not np.array_equal(batch[0], batch[1])  # the high 32 bits matter


# --- 4. atomic, versioned export and models.config ------------------------------------------------

def parse_models_config(path: Path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def test_versions_increment_and_no_staging_folder_is_left(zoo, tmp_path):
    t = zoo("lstm", "pianoroll")
    export_dir, base = tmp_path / "exports", tmp_path / "exports" / "roll"
    incomplete, stop = [], threading.Event()

    def watch():  # a server polling the folder never sees a half-written version
        while not stop.is_set():
            for p in base.glob("*") if base.exists() else []:
                if p.name.isdigit() and not ((p / "saved_model.pb").is_file() and (
                        p / "variables" / "variables.index").is_file()):
                    incomplete.append(p.name)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for version in (1, 2, 3):
            path = export.export(t.model, "lstm", t.spec, SEQ_LEN, export_dir, name="roll")
            assert path == base / str(version)
            assert sorted(p.name for p in base.iterdir()) == [str(v) for v in
                                                               range(1, version + 1)]
    finally:
        stop.set()
        watcher.join()
    assert not incomplete
    assert export.versions(base) == [1, 2, 3]
    assert metadata(tf.saved_model.load(str(base / "3")))["model"] == "lstm"
    assert sorted(p.name for p in export_dir.iterdir()) == ["models.config", "roll"]


def test_a_staging_folder_is_never_a_version(zoo, tmp_path):
    t = zoo("lstm", "pianoroll")
    export_dir = tmp_path / "exports"
    base = export_dir / "roll"
    first = export.export(t.model, "lstm", t.spec, SEQ_LEN, export_dir, name="roll")
    # what a crashed export of another process leaves: a whole SavedModel in a staging folder
    shutil.copytree(first, base / ".staging-999999")
    (base / "notes").mkdir()
    assert export.versions(base) == [1]
    assert resolve(base) == first
    # this process's own leftover staging folder is replaced, not renamed into a version
    own = base / f".staging-{os.getpid()}"
    own.mkdir()
    (own / "junk.txt").write_text("half written")
    second = export.export(t.model, "lstm", t.spec, SEQ_LEN, export_dir, name="roll")
    assert second == base / "2" and not own.exists()
    assert not (second / "junk.txt").exists()
    assert export.versions(base) == [1, 2]
    assert resolve(base) == second
    # versions count as numbers: after 9 comes 10, and 10 is the newest
    shutil.copytree(first, base / "9")
    tenth = export.export(t.model, "lstm", t.spec, SEQ_LEN, export_dir, name="roll")
    assert tenth == base / "10" and export.versions(base) == [1, 2, 9, 10]
    assert resolve(base) == tenth
    # a model folder holding nothing but a staging folder is not served
    shutil.copytree(first, export_dir / "half" / ".staging-999998")
    export.write_models_config(export_dir)
    config = parse_models_config(export_dir / "models.config")
    assert [c.name for c in config.model_config_list.config] == ["roll"]


def test_models_config_lists_every_exported_model(zoo):
    for case in CASES:
        zoo(*case)
    path = zoo.export_dir / "models.config"
    config = parse_models_config(path)
    entries = config.model_config_list.config
    names = {c.name for c in entries}
    assert set(IDS) <= names  # and whatever other test modules asked the session's zoo for
    assert names == {p.name for p in zoo.export_dir.iterdir() if p.is_dir()}
    for entry in entries:
        assert entry.base_path == f"/models/{entry.name}"
        assert entry.model_platform == "tensorflow"
    assert not list(zoo.export_dir.glob("*.tmp"))
    assert not list(zoo.export_dir.glob("*/.staging-*"))


# --- 5. bad requests ------------------------------------------------------------------------------

NOTES_OK = ["C4|2|2", "E4|2|2", "G4|4|4"]

TEMPERATURE_RANGE = r"temperature must be > 0 and <= 10"
NOTES_ERRORS = {
    "num_steps 0": (dict(num_steps=[0]), r"num_steps must be >= 1"),
    "num_steps above max_steps": (dict(num_steps=[4097]), r"num_steps must be <= 4096"),
    "temperature 0": (dict(temperature=[0.0]), TEMPERATURE_RANGE),
    "temperature inf": (dict(temperature=[np.inf]), r"temperature: every value must be finite"),
    "temperature NaN": (dict(temperature=[np.nan]), r"temperature: every value must be finite"),
    "temperature 1e30": (dict(temperature=[1e30]), TEMPERATURE_RANGE),
    "negative top_k": (dict(top_k=[-1]), r"top_k must be >= 0"),
    "an empty primer row": (dict(primer=[NOTES_OK, ["", "", ""]], num_steps=[3, 3],
                                 temperature=[1.0, 1.0], top_k=[0, 0], seed=[1, 2]),
                            r"primer: every row needs an event"),
    "a primer of no events": (dict(primer=np.zeros((1, 0), bytes)),
                              r"primer: every row needs an event"),
    "C4|x": (dict(primer=[["C4|2|2", "C4|x"]]), r"primer: every event is TOKEN\|DURATION\|SHIFT"),
    "C4": (dict(primer=[["C4", "E4|2|2"]]), r"primer: every event is TOKEN\|DURATION\|SHIFT"),
    "C4|x|1": (dict(primer=[["C4|x|1"]]), r"primer: DURATION and SHIFT are whole numbers"),
    "C4|-1|1": (dict(primer=[["C4|-1|1"]]), r"primer: DURATION and SHIFT are whole numbers"),
    "num_steps per row": (dict(num_steps=[3, 3]), r"num_steps: one value per row"),
    "temperature per row": (dict(temperature=[1.0, 1.0]), r"temperature: one value per row"),
    "top_k per row": (dict(top_k=[0, 0]), r"top_k: one value per row"),
    "seed per row": (dict(seed=[1, 2]), r"seed: one value per row"),
}


def notes_request(**overrides) -> dict:
    request = dict(primer=[NOTES_OK], num_steps=[3], temperature=[1.0], top_k=[0], seed=[1])
    request.update(overrides)
    dtypes = dict(primer=tf.string, num_steps=tf.int32, temperature=tf.float32, top_k=tf.int32,
                  seed=tf.int64)
    return {k: tf.constant(v, dtypes[k]) for k, v in request.items()}


@pytest.mark.parametrize("overrides, message", NOTES_ERRORS.values(), ids=NOTES_ERRORS.keys())
def test_bad_notes_requests_are_invalid_argument_errors(zoo, overrides, message):
    t = zoo("lstm", "notes")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        t.loaded.signatures["generate"](**notes_request(**overrides))


def test_unknown_primer_tokens_are_the_oov_token(zoo):
    t = zoo("attention_lstm", "notes")
    signature = t.loaded.signatures["generate"]
    unknown = signature(**notes_request(primer=[["Q9|2|2", "C4|2|2", "C4.X#|1|1"]],
                                        num_steps=[8], seed=[4]))["tokens"]
    oov = signature(**notes_request(primer=[[f"{OOV}|2|2", "C4|2|2", f"{OOV}|1|1"]],
                                    num_steps=[8], seed=[4]))["tokens"]
    np.testing.assert_array_equal(decode(unknown), decode(oov))
    assert all(parse_event_string(s)[0] in t.vocab.tokens for s in decode(unknown)[0])
    probs = t.loaded.signatures["serving_default"](context=tf.constant([["Q9|2|2"]]))
    np.testing.assert_allclose(probs["token_probs"].numpy().sum(), 1.0, atol=1e-5)


ROLL_ERRORS = {
    "num_steps 0": (dict(num_steps=[0]), r"num_steps must be >= 1"),
    "num_steps above max_steps": (dict(num_steps=[4097]), r"num_steps must be <= 4096"),
    "temperature 0": (dict(temperature=[0.0]), TEMPERATURE_RANGE),
    "temperature 11": (dict(temperature=[11.0]), TEMPERATURE_RANGE),
    "temperature NaN": (dict(temperature=[np.nan]), r"temperature: every value must be finite"),
    "threshold above 1": (dict(threshold=[1.5]), r"threshold must be >= 0 and <= 1"),
    "threshold -inf": (dict(threshold=[-np.inf]), r"threshold: every value must be finite"),
    "a NaN in the primer": (dict(primer=np.full((1, 4, 88), np.nan, np.float32)),
                            r"primer: every value must be finite"),
    "an empty primer": (dict(primer=np.zeros((1, 0, 88), np.float32)), r"primer is empty"),
    "num_steps per row": (dict(num_steps=[3, 3]), r"num_steps: one value per row"),
    "seed per row": (dict(seed=[1, 2]), r"seed: one value per row"),
    "threshold per row": (dict(threshold=[0.0, 0.0]), r"threshold: one value per row"),
}


@pytest.mark.parametrize("name", ["lstm", "seq2seq"])
@pytest.mark.parametrize("overrides, message", ROLL_ERRORS.values(), ids=ROLL_ERRORS.keys())
def test_bad_roll_requests_are_invalid_argument_errors(zoo, name, overrides, message):
    t = zoo(name, "pianoroll")
    request = dict(primer=t.primer(0)[None], num_steps=[3], temperature=[1.0], threshold=[0.0],
                   seed=[1])
    request.update(overrides)
    dtypes = dict(primer=tf.float32, num_steps=tf.int32, temperature=tf.float32,
                  threshold=tf.float32, seed=tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        t.loaded.signatures["generate"](**{k: tf.constant(v, dtypes[k])
                                           for k, v in request.items()})


BARS_ERRORS = {
    "num_bars 0": (dict(num_bars=[0]), r"num_bars must be >= 1"),
    "num_bars above max_steps": (dict(num_bars=[4097]), r"num_bars must be <= 4096"),
    "no chords": (dict(chords=np.zeros((1, 0, 13), np.float32)), r"chords is empty"),
    "num_bars per row": (dict(num_bars=[2, 2]), r"num_bars: one value per row"),
    "seed per row": (dict(seed=[1, 2]), r"seed: one value per row"),
}


@pytest.mark.parametrize("overrides, message", BARS_ERRORS.values(), ids=BARS_ERRORS.keys())
def test_bad_bars_requests_are_invalid_argument_errors(zoo, overrides, message):
    t = zoo("midinet", "bars")
    request = dict(chords=t.primer(0)[None], num_bars=[2], seed=[1])
    request.update(overrides)
    dtypes = dict(chords=tf.float32, num_bars=tf.int32, seed=tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        t.loaded.signatures["generate"](**{k: tf.constant(v, dtypes[k])
                                           for k, v in request.items()})


def test_max_steps_is_the_exported_limit(zoo, tmp_path):
    t = zoo("lstm", "notes")
    path = export.export(t.model, "lstm", t.spec, SEQ_LEN, tmp_path, vocab=t.vocab, max_steps=16)
    loaded = tf.saved_model.load(str(path))
    assert metadata(loaded)["max_steps"] == 16
    assert decode(loaded.signatures["generate"](**notes_request(num_steps=[16]))["tokens"]
                  ).shape == (1, 16)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"num_steps must be <= 16"):
        loaded.signatures["generate"](**notes_request(num_steps=[17]))


# --- 6. `python -m trainer.task --export-dir` -----------------------------------------------------

def task_args(corpus, job) -> list[str]:
    return ["--model", "lstm", "--representation", "pianoroll", "--data", str(corpus),
            "--epochs", "1", "--seq-len", str(SEQ_LEN), "--batch-size", "16",
            "--hparams", hparams_flag("lstm"), "--sample-every", "0", "--job-dir", str(job)]


def test_task_exports_a_new_version_per_run(zoo, tmp_path):
    exports = tmp_path / "exports"
    for job, more, version in (("job1", [], "lstm/1"), ("job2", [], "lstm/2"),
                               ("job3", ["--export-name", "pianist"], "pianist/1")):
        rc, out, err = run_main(task.main, [*task_args(zoo.corpus, tmp_path / job),
                                            "--export-dir", exports, *more])
        assert rc == 0, err
        assert json.loads(out.strip().splitlines()[-1])["export"] == str(exports / version)
        assert (exports / version / "saved_model.pb").is_file()
    assert export.versions(exports / "lstm") == [1, 2]
    assert export.versions(exports / "pianist") == [1]
    assert not list(exports.glob("*/.staging-*"))
    meta = metadata(tf.saved_model.load(str(exports / "pianist" / "1")))
    assert (meta["model"], meta["representation"], meta["window"]) == ("lstm", "pianoroll",
                                                                      SEQ_LEN)
    config = parse_models_config(exports / "models.config")
    assert sorted((c.name, c.base_path) for c in config.model_config_list.config) == [
        ("lstm", "/models/lstm"), ("pianist", "/models/pianist")]


# --- 7. `python -m trainer.generate` end to end ---------------------------------------------------

TF_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def own_stderr_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's C++ start-up log lines, which the CLI cannot silence."""
    return [line for line in stderr.splitlines() if line.strip() and not TF_LOG.match(line)]


@pytest.fixture(scope="module")
def cli(zoo, tmp_path_factory, parse_cache):
    """`python -m trainer.generate` runs: one subprocess, the others in this process.
    MODELS/composer holds two versions: 1 an lstm, 2 an attention_lstm (both on notes)."""
    root = tmp_path_factory.mktemp("generate-cli")
    models = root / "models"
    for version, name in enumerate(("lstm", "attention_lstm"), start=1):
        # the zoo's exports (export.export of the same model, spec and vocabulary), as versions
        shutil.copytree(zoo(name, "notes").path, models / "composer" / str(version))
    export.write_models_config(models)
    composer = models / "composer"
    primer = write_midi_file(root / "primer.mid", [MELODY, BASS])
    silent = write_midi_file(root / "silent.mid", [[]])

    def args(out, *more, model=composer, steps=16, seed=7):
        return ["--model", model, "--steps", steps, "--seed", seed, "--out", root / out, *more]

    runs = {
        "full": args("full.mid", "--wav", root / "full.wav", "--png", root / "roll.png"),
        "same seed": args("same.mid"),
        "other seed": args("other.mid", seed=8),
        "primer": args("primer-out.mid", "--primer", primer),
        "version 1": args("v1.mid", "--version", 1),
        "version folder 1": args("v1-folder.mid", model=composer / "1"),
        "missing model": args("missing.mid", model=root / "no-such-model"),
        "unknown version": args("unknown.mid", "--version", 9),
        "silent primer": args("silent-out.mid", "--primer", silent),
        "steps 0": args("zero.mid", steps=0),
        "pianoroll": args("roll.mid", "--primer", primer, "--temperature", 2.0,
                          model=zoo("seq2seq", "pianoroll").path.parent),
        "bars": args("bars.mid", "--primer", primer, steps=3,
                     model=zoo("midinet", "bars").path.parent),
    }
    # "full" runs as a subprocess (the real entry point, its stderr), the others in this process
    # while it runs
    env = {**os.environ, "PYTHONPATH": str(REPO), "COMPOSER_CACHE": str(parse_cache)}
    full = subprocess.Popen([sys.executable, "-m", "trainer.generate", *map(str, runs.pop("full"))],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    results = {name: subprocess.CompletedProcess(argv, *run_main(generate.main, argv))
               for name, argv in runs.items()}
    stdout, stderr = full.communicate(timeout=300)
    results["full"] = subprocess.CompletedProcess(full.args, full.returncode, stdout, stderr)
    return root, composer, results


def ok(result) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_generate_cli_writes_midi_wav_and_png(cli):
    root, composer, results = cli
    result = ok(results["full"])
    assert str(composer / "2") in result.stdout  # the newest version
    (piece,) = read_file(root / "full.mid")
    assert len(piece) > 0
    # the primer (8 events) and 16 generated events: well past the primer's end
    assert piece.end > 2.0
    data = (root / "full.wav").read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(str(root / "full.wav")) as w:
        assert w.getnframes() > 0 and w.getsampwidth() == 2
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(samples).max() > 0
    assert (root / "roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_cli_is_deterministic_by_seed(cli):
    root, _, results = cli
    for name in ("full", "same seed", "other seed"):
        ok(results[name])
    full = (root / "full.mid").read_bytes()
    assert full == (root / "same.mid").read_bytes()
    assert full != (root / "other.mid").read_bytes()


def test_generate_cli_continues_a_primer_file(cli):
    root, _, results = cli
    ok(results["primer"])
    (piece,) = read_file(root / "primer-out.mid")
    at_start = set(piece.pitch[piece.start == 0].tolist())
    assert {MELODY[0][0], BASS[0][0]} <= at_start  # the primer's first notes open the piece
    assert (root / "primer-out.mid").read_bytes() != (root / "full.mid").read_bytes()


def test_generate_cli_picks_a_version(cli):
    root, composer, results = cli
    result = ok(results["version 1"])
    assert str(composer / "1") in result.stdout
    ok(results["version folder 1"])
    v1 = (root / "v1.mid").read_bytes()
    assert v1 == (root / "v1-folder.mid").read_bytes()
    assert v1 != (root / "full.mid").read_bytes()  # version 2 is another model


@pytest.mark.parametrize("run, out, steps_per_quarter", [("pianoroll", "roll.mid", 4),
                                                         ("bars", "bars.mid", 4)])
def test_generate_cli_other_representations(cli, run, out, steps_per_quarter):
    """Frames and bars go through the same CLI: the primer, then the generated steps."""
    root, _, results = cli
    ok(results[run])
    (piece,) = read_file(root / out)
    assert len(piece) > 0
    if run == "bars":  # 3 bars of 4 quarter notes, melody and chords
        assert piece.end == pytest.approx(12.0, abs=0.5)
    else:  # at most the 8 primer frames and 16 generated ones, 4 per quarter note
        assert piece.end <= (SEQ_LEN + 16) / steps_per_quarter + 1e-6


@pytest.mark.parametrize("run, out, words", [
    ("missing model", "missing.mid", ["no-such-model", "no exported SavedModel"]),
    ("unknown version", "unknown.mid", ["no version 9"]),
    ("silent primer", "silent-out.mid", ["silent.mid", "no notes"]),
    ("steps 0", "zero.mid", ["num_steps", ">= 1"]),
])
def test_generate_cli_errors_are_one_line(cli, run, out, words):
    root, _, results = cli
    result = results[run]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = own_stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (root / out).exists()
