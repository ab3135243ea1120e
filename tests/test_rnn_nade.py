"""`rnn_nade`: the NADE's all-keys-at-once likelihood against a key-by-key loop, padding left out
of the loss, the in-graph `generate` against the NumPy `sample` bit for bit (both encodings), and
the exported signatures, loaded back, against the Keras model."""

from __future__ import annotations

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from preprocessing.dataset import Settings
from tests.conftest import nade_log_likelihood, two_voices, write_midi_file
from tests.zoo import TINY, hparams_flag
from trainer import data as data_lib
from trainer import export
from trainer.config import Config
from trainer.models import MODELS, nade, rnn_nade

SEQ_LEN = 8


def test_all_keys_at_once_equal_the_sum_of_key_conditionals():
    keys, hidden = 12, 5
    generator = np.random.default_rng(0)
    layer = nade.NADE(hidden)
    b = generator.normal(size=(2, 3, keys)).astype(np.float32)
    c = generator.normal(size=(2, 3, hidden)).astype(np.float32)
    v = (generator.random((2, 3, keys)) < 0.4).astype(np.float32)
    layer([b, c, v])  # builds W and V
    layer.W.assign(layer.W + generator.normal(size=layer.W.shape))  # away from the init scale
    W, V = np.asarray(layer.W, np.float64), np.asarray(layer.V, np.float64)
    logits = np.asarray(layer([b, c, v]))
    at_once = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(v, logits), -1).numpy()
    expected = np.array([[nade_log_likelihood(b[i, t], c[i, t], W, V, v[i, t])
                          for t in range(3)] for i in range(2)])
    np.testing.assert_allclose(at_once, expected, rtol=1e-5, atol=1e-4)
    # the loss: NLL per frame, summed over keys, averaged over frames
    loss = float(nade.nade_nll(tf.constant(v), tf.constant(logits)))
    np.testing.assert_allclose(loss, -expected.mean(), rtol=1e-5)


def test_padding_frames_are_left_out_of_the_loss():
    spec = data_lib.DataSpec("pianoroll", keys=10)
    keras.utils.set_random_seed(1)
    model = rnn_nade.build(spec, TINY["rnn_nade"])
    x = (np.random.default_rng(1).random((1, 6, 10)) < 0.3).astype(np.float32)
    y = x[:, 1:].copy()
    y[:, :2] = data_lib.PAD
    logits = model(x)
    nll = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(x[:, 1:], logits), -1).numpy()
    loss = float(nade.nade_nll(tf.constant(y), logits))
    np.testing.assert_allclose(loss, nll[0, 2:].mean(), rtol=1e-6)


def test_make_arrays_marks_the_padding_of_short_pieces(datasets):
    folder, spec = datasets["active"]
    x, y = rnn_nade.make_arrays(folder, "train", spec, types.SimpleNamespace(seq_len=200))
    assert x.shape[1] == 201 and y.shape == (len(x), 200, spec.keys)
    padded = y[..., 0] == data_lib.PAD
    assert padded.any() and (y[padded] == data_lib.PAD).all()
    assert not x[:, 1:][padded].any()  # padding frames are silent inputs
    np.testing.assert_array_equal(y[~padded], x[:, 1:][~padded])


# --- tiny trained models, exported and loaded back -----------------------------------------------

@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("nade-corpus")
    for k in range(4):
        write_midi_file(corpus / f"piece{k}.mid", two_voices(200 + k))
    out = {}
    for encoding in ("active", "onset-sustain"):
        folder = tmp_path_factory.mktemp(f"nade-ds-{encoding}")
        spec, _ = data_lib.prepare([str(corpus)], folder, Settings(
            representation="pianoroll", encoding=encoding, validation=0.0, test=0.0),
            progress=False)
        out[encoding] = folder, spec
    return out


@pytest.fixture(scope="module")
def zoo(datasets, tmp_path_factory):
    exports, cache = tmp_path_factory.mktemp("nade-exports"), {}

    def get(encoding):
        if encoding not in cache:
            folder, spec = datasets[encoding]
            config = Config(model="rnn_nade", encoding=encoding, seq_len=SEQ_LEN,
                            hparams=dict(TINY["rnn_nade"]))
            keras.utils.set_random_seed(3)
            x, y = MODELS["rnn_nade"].arrays(folder, "train", spec, config)
            model = rnn_nade.build(spec, config.hparams)
            model.fit(x, y, batch_size=16, epochs=2, verbose=0)
            path = export.export(model, "rnn_nade", spec, SEQ_LEN, exports, name=encoding)
            cache[encoding] = types.SimpleNamespace(spec=spec, model=model, x=x, y=y,
                                                    path=path,
                                                    loaded=tf.saved_model.load(str(path)))
        return cache[encoding]

    return get


ENCODINGS = ["active", "onset-sustain"]


def generate(t, primers, steps, seeds, temperature=None, threshold=None) -> np.ndarray:
    n = len(primers)
    return t.loaded.signatures["generate"](
        primer=tf.constant(np.stack(primers), tf.float32),
        num_steps=tf.constant(steps, tf.int32), seed=tf.constant(seeds, tf.int64),
        temperature=tf.constant(temperature or [1.0] * n, tf.float32),
        threshold=tf.constant(threshold or [0.0] * n, tf.float32))["frames"].numpy()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_generate_matches_the_numpy_sampler_bit_for_bit(zoo, encoding):
    t = zoo(encoding)
    primers = [t.x[0][:5], t.x[3][:5], t.x[1][:5]]
    settings = [(9, 7, 1.0, 0.0), (4, 8, 0.7, 0.0), (6, 9, 1.0, 0.3)]  # steps, seed, t, threshold
    out = generate(t, primers, [s[0] for s in settings], [s[1] for s in settings],
                   [s[2] for s in settings], [s[3] for s in settings])
    assert out.shape == (3, 9, t.spec.keys)
    for primer, (steps, seed, temperature, threshold), row in zip(primers, settings, out):
        expected = rnn_nade.sample(t.model, t.spec, primer, steps, temperature, seed,
                                   threshold=threshold)
        np.testing.assert_array_equal(row[:steps], expected)
        assert not row[steps:].any()
    assert out[0].sum() > 0  # it plays
    # the Family's sampler (the training callback's) is the module's
    np.testing.assert_array_equal(
        MODELS["rnn_nade"].sample(t.model, t.spec, primers[0], 9, 1.0, 7, SEQ_LEN), out[0])
    # another seed, other frames
    assert not np.array_equal(generate(t, primers[:1], [9], [8]), out[:1])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_export_loads_back_with_its_signatures(zoo, encoding):
    t = zoo(encoding)
    signatures = t.loaded.signatures
    assert set(signatures) == {"generate", "log_likelihood", "serving_default", "metadata"}
    assert set(signatures["generate"].structured_input_signature[1]) == {
        "primer", "num_steps", "temperature", "threshold", "seed"}
    assert set(signatures["generate"].structured_outputs) == {"frames"}
    assert set(signatures["log_likelihood"].structured_input_signature[1]) == {"frames"}
    assert set(signatures["log_likelihood"].structured_outputs) == {"nll", "probs"}
    meta = {k: v.numpy()[0] for k, v in signatures["metadata"](
        request=tf.constant([0])).items()}
    meta = {k: v.decode() if isinstance(v, bytes) else v.item() for k, v in meta.items()}
    assert meta["model"] == "rnn_nade" and meta["representation"] == "pianoroll"
    assert meta["encoding"] == encoding and meta["keys"] == t.spec.keys
    assert meta["window"] == SEQ_LEN
    assert meta["inputs"] == "primer,num_steps,temperature,threshold,seed"
    assert meta["signatures"].split(",") == sorted(signatures)
    # the keras model loads back too (the job's model.keras)
    path = t.path.parent / "model.keras"
    t.model.save(path)
    again = keras.saving.load_model(path, custom_objects=MODELS["rnn_nade"].custom_objects)
    np.testing.assert_allclose(again(t.x[:2]), t.model(t.x[:2]), rtol=1e-5, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
        generate(t, [t.x[0][:4]], [3], [1], temperature=[0.0])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_likelihood_signature_is_the_keras_loss(zoo, encoding):
    """Every frame counts, the first given a silent frame before it, as the training windows
    that start a piece have it."""
    t = zoo(encoding)
    frames = t.x[:4]
    out = t.loaded.signatures["log_likelihood"](frames=tf.constant(frames))
    shape = (4, SEQ_LEN + 1)
    assert out["nll"].shape == shape and out["probs"].shape == (*shape, t.spec.keys)
    silent_first = np.concatenate([np.zeros_like(frames[:, :1]), frames], 1)
    loss = t.model.evaluate(silent_first, frames, batch_size=4, verbose=0)
    np.testing.assert_allclose(float(tf.reduce_mean(out["nll"])), loss, rtol=1e-5)
    default = t.loaded.signatures["serving_default"](frames=tf.constant(frames))
    np.testing.assert_allclose(default["nll"], out["nll"])


@pytest.mark.slow
def test_trains_exports_and_evaluates_through_the_shared_paths(tmp_path):
    import json

    from evaluation import evaluate
    from trainer import task

    corpus = tmp_path / "corpus"
    for k in range(6):
        write_midi_file(corpus / f"piece{k}.mid", two_voices(300 + k))
    saved = tmp_path / "saved"
    hparams = hparams_flag("rnn_nade")
    assert task.main(["--model", "rnn_nade", "--data", str(corpus), "--steps-per-quarter", "1",
                      "--encoding", "active", "--augment", "0", "--epochs", "2", "--seq-len", "8",
                      "--batch-size", "8", "--hparams", hparams, "--sample-every", "1",
                      "--sample-steps", "8",
                      "--job-dir", str(tmp_path / "job"), "--export-dir", str(saved)]) == 0
    assert sorted((tmp_path / "job" / "samples").glob("*.mid"))  # the callback's, from sample
    assert (saved / "rnn_nade" / "1" / "saved_model.pb").is_file()
    report = tmp_path / "eval"
    assert evaluate.main(["--model", str(saved / "rnn_nade"), "--data", str(corpus),
                          "--train-data", str(corpus), "--samples", "2", "--steps", "8",
                          "--out", str(report)]) == 0
    results = json.loads((report / "report.json").read_text())
    assert results["metadata"]["steps_per_quarter"] == 1
    assert np.isfinite(results["likelihood"]["nll_per_frame"])
