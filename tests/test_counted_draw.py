"""seq2seq's classifier head (`head=keys`) and its calibrated frame draw (`decoders.counted`): its
NumPy twin, the count it sounds, the calibration that `CountCalibration` learns from validation
data during a real `fit`, and the exported loop against the NumPy sampler. (The zoo's seq2seq
has the default NADE head, which test_export checks.)"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import decoders, export, rng, sampling
from trainer.data import DataSpec
from trainer.models import MODELS, seq2seq

KEYS = 88


def draws(logits, temperature, threshold, scale, seed, step=0):
    """The TF draw of every row and the NumPy draw of each row alone."""
    seeds = np.arange(seed, seed + len(logits), dtype=np.int64)
    u = rng.uniform_np(seeds, step, 0, KEYS)
    u_count = rng.uniform_np(seeds, step, 1, 1)[:, 0]
    graph = decoders.counted(tf.constant(logits), tf.constant(temperature),
                             tf.constant(threshold), tf.constant(scale, tf.float32),
                             tf.constant(u), tf.constant(u_count)).numpy()
    numpy = np.stack([sampling.counted(logits[r], temperature[r], threshold[r], scale, u[r],
                                       u_count[r]) for r in range(len(logits))])
    return graph, numpy


@pytest.mark.parametrize("scale", [0.15, 1.0, 3.0])
def test_the_graph_draw_is_the_numpy_draw_and_sounds_the_calibrated_count(scale):
    logits = np.random.default_rng(0).normal(-2.0, 2.5, (64, KEYS)).astype(np.float32)
    temperature = np.tile(np.float32([0.7, 1.0, 1.6, 1.0]), 16)
    threshold = np.zeros(64, np.float32)
    graph, numpy = draws(logits, temperature, threshold, scale, seed=5)
    np.testing.assert_array_equal(graph, numpy)
    expected = scale * (1 / (1 + np.exp(-logits / temperature[:, None]))).sum(-1)
    on = graph.sum(-1)
    low, high = np.minimum(np.floor(expected), KEYS), np.minimum(np.ceil(expected), KEYS)
    assert np.all((on >= low) & (on <= high))  # at most every key
    assert abs(on.mean() - np.minimum(expected, KEYS).mean()) < 0.05 * expected.mean() + 0.2


def test_the_likeliest_keys_are_drawn_most_often():
    logits = np.full((400, KEYS), -6.0, np.float32)
    logits[:, [40, 44, 47, 52]] = [3.0, 2.0, 1.0, 0.0]  # four voices, the first surest
    graph, _ = draws(logits, np.ones(400, np.float32), np.zeros(400, np.float32), 0.5, seed=1)
    share = graph[:, [40, 44, 47, 52]].mean(0)
    assert graph.sum(-1).max() <= 2 and np.all(np.diff(share) < 0), share
    assert graph[:, :40].sum() + graph[:, 53:].sum() < 0.02 * graph.sum()


def test_rows_with_a_threshold_keep_the_threshold_rule():
    logits = np.random.default_rng(1).normal(0.0, 2.0, (4, KEYS)).astype(np.float32)
    threshold = np.float32([0.5, 0.8, 0.0, 0.3])
    graph, numpy = draws(logits, np.ones(4, np.float32), threshold, 0.2, seed=9)
    np.testing.assert_array_equal(graph, numpy)
    for r in (0, 1, 3):
        np.testing.assert_array_equal(graph[r], (1 / (1 + np.exp(-logits[r])) > threshold[r]))


def test_fit_calibrates_the_count_on_the_validation_frames():
    """After each epoch, count_scale = the validation frames' keys / the model's expected keys,
    as the history logs them; independent draws keep count_scale out of the way."""
    spec = DataSpec("pianoroll", keys=KEYS)
    hp = {**MODELS["seq2seq"].defaults, "units": 8, "layers": 1, "dense": 8, "head": "keys"}
    model = MODELS["seq2seq"].build(spec, hp, 6)
    rng_ = np.random.default_rng(2)
    frames = (rng_.random((24, 12, KEYS)) < 0.05).astype(np.float32)
    x = {"encoder": frames[:, :6], "decoder": seq2seq.decoder_inputs(frames[:, 6:])}
    history = model.fit(x, frames[:, 6:], validation_data=(x, frames[:, 6:]), batch_size=8,
                        epochs=2, verbose=0, callbacks=MODELS["seq2seq"].callbacks(hp)).history
    keys, expected = history["val_keys_per_frame"][-1], history["val_expected_keys"][-1]
    assert keys == pytest.approx(frames[:, 6:].sum(-1).mean(), rel=1e-5)
    assert float(model.count_scale.numpy()) == pytest.approx(keys / expected, rel=1e-5)
    assert history["count_scale"][-1] == pytest.approx(keys / expected, rel=1e-5)


@pytest.mark.parametrize("own", ["draw", "threshold"])
def test_scheduled_sampling_feeds_the_decoder_frames_drawn_as_composing_draws_them(own):
    """With teacher forcing off, the decoder reads its own frames: drawn by the count rule
    (`own=draw`: 4-5 keys where every key has p 0.047) or thresholded at 0.5 (the seed's
    rule: silence, which is not what it reads when it composes)."""
    spec = DataSpec("pianoroll", keys=KEYS)
    hp = {**MODELS["seq2seq"].defaults, "units": 8, "layers": 1, "dense": 8, "own": own,
          "head": "keys"}
    model = MODELS["seq2seq"].build(spec, hp, 6)
    kernel, bias = model.logits.get_weights()
    model.logits.set_weights([np.zeros_like(kernel), np.full_like(bias, -3.0)])
    model.teacher_forcing.assign(0.0)
    model.optimizer.learning_rate.assign(0.0)  # the probabilities stay where they were set
    seen, decode = [], model.decode

    def spy(inputs, states, training=False, target=None):
        if training:
            seen.append(np.asarray(inputs))
        return decode(inputs, states, training, target)

    model.decode, model.run_eagerly = spy, True
    frames = np.ones((4, 12, KEYS), np.float32)  # the data's frames: every key on
    x = {"encoder": frames[:, :6], "decoder": seq2seq.decoder_inputs(frames[:, 6:])}
    model.fit(x, frames[:, 6:], batch_size=4, epochs=1, verbose=0)
    (inputs,) = seen
    np.testing.assert_array_equal(inputs[:, 0, -1], 1)  # the start frame stays
    counts = inputs[:, 1:, :KEYS].sum(-1)
    expected = KEYS / (1 + np.exp(3.0))  # 4.2
    if own == "draw":
        assert set(counts.ravel().tolist()) <= {np.floor(expected), np.floor(expected) + 1}
    else:
        assert not counts.any()


@pytest.mark.parametrize("draw", ["count", "independent"])
def test_the_exported_keys_head_draws_as_the_numpy_sampler(tmp_path, draw):
    """The classifier head's `generate` loop, exported and loaded back, draws bit for bit what
    `seq2seq.sample` draws step by step in NumPy."""
    spec = DataSpec("pianoroll", keys=KEYS)
    hp = {**MODELS["seq2seq"].defaults, "units": 8, "layers": 1, "dense": 8, "head": "keys",
          "draw": draw}
    model = MODELS["seq2seq"].build(spec, hp, 6)
    frames = (np.random.default_rng(4).random((16, 12, KEYS)) < 0.05).astype(np.float32)
    x = {"encoder": frames[:, :6], "decoder": seq2seq.decoder_inputs(frames[:, 6:])}
    model.fit(x, frames[:, 6:], batch_size=8, epochs=1, verbose=0,
              callbacks=MODELS["seq2seq"].callbacks(hp))
    loaded = tf.saved_model.load(str(export.export(model, "seq2seq", spec, 6, tmp_path)))
    for seed, temperature in ((3, 1.0), (4, 2.5)):
        out = loaded.signatures["generate"](
            primer=tf.constant(frames[:1, :6]), num_steps=tf.constant([10]),
            temperature=tf.constant([temperature]), threshold=tf.constant([0.0]),
            seed=tf.constant([seed], tf.int64))["frames"].numpy()[0]
        expected = seq2seq.sample(model, spec, frames[0, :6], 10, temperature, seed)
        assert 0 < expected.sum() < expected.size
        np.testing.assert_array_equal(out, expected)
