"""`rnn_nade`: an LSTM over frames sets the biases of a NADE over the next frame's keys (low to
high), an exact likelihood (Boulanger-Lewandowski, Bengio, Vincent, ICML 2012; `nade`).

Training is teacher-forced: the model reads a window of L + 1 frames and returns, for each of the
last L, every key's logit given the frames before it and the keys below it in the same frame
(the NADE's conditionals, computed for all keys at once), so the frame's exact NLL is the sum
over keys of their binary cross-entropies. The NADE's biases b and c come from the LSTM (Dense
layers). Onset-sustain frames are 176 values, drawn in their order (onsets, then holds).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from preprocessing import dataset, pianoroll
from trainer import data as data_lib
from trainer import decoders, rng
from trainer.data import DataSpec
from trainer.export.base import Exported, keep_rows, signature
from trainer.models import nade

REPRESENTATIONS = ("pianoroll",)
DEFAULTS = dict(layers=1, units=256, nade_hidden=150, dropout=0.3, learning_rate=2e-3)
# the JSB Chorales benchmark's frames (a quarter-note grid, what sounds at each step's start),
# transposed ±2 semitones: held-out 5.83 nats per frame on the chorales (QUALITY.md)
TRAINING = dict(steps_per_quarter=1, encoding="sampled", augment=2, seq_len=32, batch_size=16,
                patience=4)
# at most; on the chorales the validation NLL stops falling and training stops after epoch 31
# (11.8 min on the 2 cores of 2026-12-02 afternoon; the morning's ran its epochs 1.9x slower)
EPOCHS = 36
MINUTES = 22


CUSTOM_OBJECTS = nade.CUSTOM_OBJECTS


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    """frames [B, L + 1, keys] → logits [B, L, keys] of each key given its past (compiled)."""
    frames = keras.Input((None, spec.keys), name="frames")
    hidden = frames[:, :-1]
    for i in range(hp["layers"]):
        hidden = keras.layers.LSTM(hp["units"], return_sequences=True, name=f"lstm_{i}")(hidden)
        hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    b = keras.layers.Dense(spec.keys, name="visible_bias")(hidden)
    c = keras.layers.Dense(hp["nade_hidden"], name="hidden_bias")(hidden)
    logits = nade.NADE(hp["nade_hidden"], name="nade")([b, c, frames[:, 1:]])
    model = keras.Model(frames, logits, name="rnn_nade")
    model.compile(keras.optimizers.Adam(hp["learning_rate"]), loss=nade.nade_nll)
    return model


def make_arrays(folder, split: str, spec: DataSpec, config):
    """(windows [N, L + 1, keys], targets [N, L, keys]); targets of padding frames are `PAD`.
    Each piece starts with a silent frame, the state the first frame is predicted from (in
    training and in `log_likelihood`)."""
    items = [np.concatenate([np.zeros((1, spec.keys), np.float32), pianoroll.to_frames(i)])
             for i in dataset.load_split(folder, split)]
    x, valid = data_lib.windows(items, config.seq_len + 1, mask=True)
    return x, np.where(valid[:, 1:, None], x[:, 1:], np.float32(data_lib.PAD))


def _layers(model):
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    return (lstms, model.get_layer("visible_bias"), model.get_layer("hidden_bias"),
            model.get_layer("nade"))


def sample(model, spec: DataSpec, primer, steps: int, temperature: float = 1.0, seed: int = 0,
           seq_len: int = 64, threshold: float = 0.0) -> np.ndarray:
    """Continues frames `primer` [L, keys] by `steps` frames (the reference of `generate`): the
    LSTM re-reads the whole history each frame; the NADE draws keys one by one.

    Returns:
        The new frames [steps, keys].
    """
    _, vb, hb, layer = _layers(model)
    biases = keras.Model(model.input, [vb.output, hb.output])
    W, V = (np.asarray(keras.ops.convert_to_numpy(w)) for w in (layer.W, layer.V))
    seq = list(np.asarray(primer, np.float32))
    seeds = np.asarray([seed], np.int64)
    for i in range(steps):
        silent = [np.zeros(spec.keys, np.float32)]  # before the piece, as in training
        history = np.asarray(silent + seq + silent)[None]  # + the frame to draw
        b, c = (np.asarray(t)[0, -1] for t in biases(history, training=False))
        seq.append(nade.draw_frame(b, c, W, V, temperature, threshold,
                              rng.uniform_np(seeds, i, 0, spec.keys)[0]))
    return np.asarray(seq[len(primer):])


class NADEExport(Exported):
    """Signatures:
    - `generate`: primer [B, L, keys], num_steps, temperature, threshold (0: sample; > 0: a key
      is on where its probability, given the keys below it, passes it), seed → frames
      [B, n, keys]; the keys of each frame are drawn one by one in the graph.
    - `log_likelihood` (also `serving_default`): frames [B, L, keys] → nll [B, L] (exact, in
      nats, of every frame, the first given a silent frame before it, as in training) and probs
      [B, L, keys] (each key's probability given the frames before and the keys below it).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lstms, self.visible_bias, self.hidden_bias, self.nade = _layers(self.model)

    def main_specs(self) -> list:
        return self.roll_generate_specs()

    def family_signatures(self) -> dict:
        likelihood = signature(self._likelihood, self.roll_specs("frames"))
        return {"generate": signature(self._generate, self.main_specs()),
                "log_likelihood": likelihood, "serving_default": likelihood}

    def _likelihood(self, frames):
        frames = tf.concat([tf.zeros_like(frames[:, :1]), frames], 1)
        return self.roll_nll(frames[:, 1:], self.model(frames, training=False))

    def _step(self, x, state):
        """The LSTM stack reads frame x [B, K] → ((b, c) for the next frame, new state)."""
        h, new = x, []
        for layer, (hh, cc) in zip(self.lstms, state):
            h, (hh, cc) = layer.cell(h, [hh, cc])
            new.append((hh, cc))
        return (self.visible_bias(h), self.hidden_bias(h)), new

    def _generate(self, primer, num_steps, temperature, threshold, seed):
        batch, length = tf.shape(primer)[0], tf.shape(primer)[1] + 1
        with tf.control_dependencies(self.check(
                batch, num_steps, temperature=temperature, threshold=threshold, seed=seed) + [
                tf.debugging.assert_greater(length, 1, message="primer is empty")]):
            state = [(tf.zeros([batch, layer.units]), tf.zeros([batch, layer.units]))
                     for layer in self.lstms]
            biases = (tf.zeros([batch, self.spec.keys]),
                      tf.zeros([batch, self.hidden_bias.units]))

            context = tf.concat([tf.zeros_like(primer[:, :1]), primer], 1)  # silent first

            def feed(t, biases, state):
                biases, state = self._step(context[:, t], state)
                return t + 1, biases, state

            _, biases, state = tf.while_loop(lambda t, *_: t < length, feed,
                                             (0, biases, state))
            steps = tf.reduce_max(num_steps)
            weights = nade.split_weights(self.nade)

            def body(i, biases, state, out):
                u = rng.uniform_tf(seed, i, 0, self.spec.keys)
                x, _ = nade.draw_keys(*biases, temperature, threshold, u, weights)
                biases, state = self._step(x, state)
                return i + 1, biases, state, out.write(i, x)

            *_, out = tf.while_loop(lambda i, *_: i < steps, body,
                                    (0, biases, state, tf.TensorArray(tf.float32, steps)))
        return {"frames": keep_rows(decoders.batch_major(out.stack()), num_steps)}


Export = NADEExport
