"""`seq2seq`: encoder-decoder over piano-roll windows, predicting the next window.

The encoder (2 x 256 LSTM or GRU) reads a window; the decoder, started from its state and a
start-of-sequence frame, writes the next window frame by frame; a classifier (Dense 256, dropout
0.5, Dense keys) gives each key's logit. Teacher forcing is scheduled: with probability
1 - ratio a decoder input is the model's own frame (two-pass scheduled sampling), and the ratio
decays over epochs (`TeacherForcingSchedule`). That frame is, by default (`own=threshold`, the
seed's rule), the keys above `threshold`, which for a calibrated model are few (most of its own
inputs are silence); `own=draw` draws it from the same logits as composing draws its frames
(`draw_frame`), so the decoder reads frames like those it will read when it composes.
Measured at the budget (QUALITY.md), `own=draw` lifts the overall overlap (0.71 to 0.75) and
the groove, but the samples still hold one chord, its notes are shorter (note-length overlap
0.11 to 0.07) and the held-out NLL is worse (7.09 to 7.51 nats a frame), so the seed's rule
stays the default.

Independent draws of each key sound far more keys than a chorale frame has (with the seed's
focal loss, whose probabilities are not calibrated, 12 a frame where chorales have 4).
`draw=count` (the default) draws each frame's keys together instead: as many as the frame's
expected count times `count_scale`, the validation frames' mean keys over their mean expected
count, which `CountCalibration` sets after every epoch, the keys drawn in proportion to their
odds (`decoders.counted`); `draw=independent` draws each key on its own. The default loss is
the plain binary cross-entropy, whose probabilities are calibrated: with the focal loss the
odds of the keys that should stay off were high enough to scatter notes over the whole range.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from preprocessing import dataset, pianoroll
from trainer import data as data_lib
from trainer import decoders, losses, metrics, rng, sampling
from trainer.data import DataSpec
from trainer.export.base import Exported, keep_rows, signature

REPRESENTATIONS = ("pianoroll",)
CHOICES = {"cell": ("lstm", "gru"), "loss": ("bce", "focal"), "draw": ("count", "independent"),
           "own": ("draw", "threshold")}
DEFAULTS = dict(cell="lstm", layers=2, units=256, dense=256, dropout=0.5, learning_rate=1e-3,
                loss="bce", alpha=0.75, gamma=2.0, threshold=0.5, teacher_forcing=1.0,
                teacher_forcing_decay=0.9, teacher_forcing_floor=0.25, draw="count",
                own="threshold")
# two-bar windows in batches of 16: 4 times the updates an epoch of 64-frame windows in 64s
TRAINING = dict(seq_len=32, batch_size=16)
EPOCHS = 12
MINUTES = 10


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Windows of 2T frames: the first T feed the encoder, the last T are the targets."""
    items = [pianoroll.to_frames(i) for i in dataset.load_split(folder, split)]
    w = data_lib.windows(items, 2 * config.seq_len, stride=config.seq_len)
    encoder, target = w[:, :config.seq_len], w[:, config.seq_len:]
    return {"encoder": encoder, "decoder": decoder_inputs(target)}, target


def decoder_inputs(target: np.ndarray) -> np.ndarray:
    """Targets shifted right behind a start frame; the last channel flags the start."""
    start = np.zeros((len(target), 1, target.shape[-1] + 1), np.float32)
    start[..., -1] = 1
    shifted = np.concatenate([target[:, :-1], np.zeros_like(target[:, :-1, :1])], axis=-1)
    return np.concatenate([start, shifted], axis=1)


@keras.saving.register_keras_serializable("composer")
class Seq2Seq(keras.Model):
    """Encoder-decoder with scheduled teacher forcing in its `train_step`."""

    def __init__(self, keys: int, cell: str = "lstm", layers: int = 2, units: int = 256,
                 dense: int = 256, dropout: float = 0.5, threshold: float = 0.5,
                 draw: str = "count", own: str = "threshold", **kwargs):
        super().__init__(**kwargs)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"seq2seq: cell must be lstm or gru, not {cell!r}")
        if own not in CHOICES["own"]:
            raise ValueError(f"seq2seq: own must be draw or threshold, not {own!r}")
        self.keys, self.cell, self.num_layers, self.units = keys, cell, layers, units
        self.dense_units, self.dropout_rate, self.threshold = dense, dropout, threshold
        self.draw, self.own = draw, own
        rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        self.encoder = [rnn(units, return_sequences=True, return_state=True, name=f"encoder_{i}")
                        for i in range(layers)]
        self.decoder = [rnn(units, return_sequences=True, return_state=True, name=f"decoder_{i}")
                        for i in range(layers)]
        self.hidden = keras.layers.Dense(dense, activation="relu", name="classifier")
        self.dropout = keras.layers.Dropout(dropout)
        self.logits = keras.layers.Dense(keys, name="frame")
        self.teacher_forcing = self.add_weight(shape=(), initializer="ones", trainable=False,
                                               name="teacher_forcing")
        self.count_scale = self.add_weight(shape=(), initializer="ones", trainable=False,
                                           name="count_scale")

    def encode(self, frames, training=False):
        """Encoder states, one list per layer."""
        states, h = [], frames
        for layer in self.encoder:
            h, *state = layer(h, training=training)
            states.append(state)
        return states

    def decode(self, inputs, states, training=False):
        """Logits for decoder inputs from `states`; returns (logits, new states)."""
        h, new_states = inputs, []
        for layer, state in zip(self.decoder, states):
            h, *state = layer(h, initial_state=state, training=training)
            new_states.append(state)
        return self.logits(self.dropout(self.hidden(h), training=training)), new_states

    def call(self, inputs, training=False):
        logits, _ = self.decode(inputs["decoder"], self.encode(inputs["encoder"], training),
                                training)
        return logits

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        ratio = self.teacher_forcing
        # pass 1: the model's own frames under full teacher forcing
        logits = self(x, training=False)
        if self.own == "draw":
            flat = tf.reshape(logits, [-1, self.keys])
            rows = tf.shape(flat)[:1]
            guess = tf.reshape(self.draw_frame(
                flat, tf.ones(rows), tf.zeros(rows), tf.random.uniform(tf.shape(flat), 1e-7, 1.0),
                tf.random.uniform(rows)), tf.shape(logits))
        else:
            guess = tf.sigmoid(logits) > self.threshold
        own = tf.stop_gradient(decoder_inputs_tf(tf.cast(guess, y.dtype)))
        keep = tf.random.uniform(tf.shape(y)[:2])[..., None] < ratio
        keep = tf.concat([tf.ones_like(keep[:, :1]), keep[:, 1:]], axis=1)  # start frame stays
        mixed = {"encoder": x["encoder"], "decoder": tf.where(keep, x["decoder"], own)}
        with tf.GradientTape() as tape:
            y_pred = self(mixed, training=True)
            loss = self.compute_loss(x=mixed, y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        for metric in self.metrics:
            metric.update_state(loss) if metric.name == "loss" else metric.update_state(y, y_pred)
        return {**{m.name: m.result() for m in self.metrics}, "teacher_forcing": ratio}

    def get_config(self):
        return {**super().get_config(), "keys": self.keys, "cell": self.cell,
                "layers": self.num_layers, "units": self.units, "dense": self.dense_units,
                "dropout": self.dropout_rate, "threshold": self.threshold, "draw": self.draw,
                "own": self.own}

    def draw_frame(self, logits, temperature, threshold, u, u_count):
        """Frames [B, keys] from key logits [B, keys], by the model's `draw` rule."""
        if self.draw == "count":
            return decoders.counted(logits, temperature, threshold, self.count_scale, u, u_count)
        return decoders.bernoulli(logits, temperature, threshold, u)

    def draw_frame_np(self, logits, temperature, seeds, step):
        """`draw_frame` for one row in NumPy, with the same `rng` streams."""
        u = rng.uniform_np(seeds, step, 0, self.keys)[0]
        if self.draw == "count":
            return sampling.counted(logits, temperature, 0.0, float(self.count_scale.numpy()), u,
                                    rng.uniform_np(seeds, step, 1, 1)[0, 0])
        return sampling.bernoulli(logits, temperature, 0.0, u)


@keras.saving.register_keras_serializable("composer")
def keys_per_frame(y_true, y_pred):
    """The data's sounding keys per frame."""
    return ops.sum(y_true, axis=-1)


@keras.saving.register_keras_serializable("composer")
def expected_keys(y_true, y_pred):
    """The model's expected sounding keys per frame: the sum of its keys' probabilities."""
    return ops.sum(ops.sigmoid(y_pred), axis=-1)


def decoder_inputs_tf(target):
    """`decoder_inputs` in TensorFlow, for predictions made inside `train_step`."""
    batch = tf.shape(target)[0]
    start = tf.concat([tf.zeros([batch, 1, target.shape[-1]], target.dtype),
                       tf.ones([batch, 1, 1], target.dtype)], axis=-1)
    shifted = tf.concat([target[:, :-1], tf.zeros_like(target[:, :-1, :1])], axis=-1)
    return tf.concat([start, shifted], axis=1)


class CountCalibration(keras.callbacks.Callback):
    """count_scale = the data's keys per frame over the model's expected keys per frame, from
    the validation metrics of each epoch (the training ones when nothing is held out)."""

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        prefix = "val_" if "val_expected_keys" in logs else ""
        expected = logs.get(prefix + "expected_keys", 0.0)
        if expected > 0:
            self.model.count_scale.assign(logs[prefix + "keys_per_frame"] / expected)
            logs["count_scale"] = float(self.model.count_scale.numpy())


class TeacherForcingSchedule(keras.callbacks.Callback):
    """ratio = max(floor, start * decay ** epoch), set at the start of every epoch."""

    def __init__(self, start: float, decay: float, floor: float):
        super().__init__()
        self.start, self.decay, self.floor = start, decay, floor

    def on_epoch_begin(self, epoch, logs=None):
        self.model.teacher_forcing.assign(max(self.floor, self.start * self.decay ** epoch))


def primer(x) -> np.ndarray:
    """The first encoder window."""
    return x["encoder"][0]


def sample(model, spec: DataSpec, primer: np.ndarray, steps: int, temperature: float = 1.0,
           seed: int = 0, seq_len: int = 64) -> np.ndarray:
    """Encodes the primer once, then decodes `steps` frames, each drawn by the model's rule."""
    seeds = np.asarray([seed], np.int64)
    states = model.encode(np.asarray(primer, np.float32)[None])
    frame = decoder_inputs(np.zeros((1, 1, spec.keys), np.float32))
    out = []
    for i in range(steps):
        logits, states = model.decode(frame, states)
        out.append(model.draw_frame_np(np.asarray(logits)[0, -1], temperature, seeds, i))
        frame = np.append(out[-1], 0.0).astype(np.float32)[None, None]
    return np.stack(out)


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    model = Seq2Seq(spec.keys, hp["cell"], hp["layers"], hp["units"], hp["dense"],
                    hp["dropout"], hp["threshold"], hp["draw"], hp["own"], name="seq2seq")
    model.compile(keras.optimizers.Adam(hp["learning_rate"]),
                  loss=losses.roll_loss(hp["loss"], hp["alpha"], hp["gamma"]),
                  metrics=metrics.roll_metrics() + [keys_per_frame, expected_keys])
    model({"encoder": np.zeros((1, seq_len or 4, spec.keys), np.float32),
           "decoder": np.zeros((1, seq_len or 4, spec.keys + 1), np.float32)})
    return model


def callbacks(hp: dict) -> list:
    return [TeacherForcingSchedule(hp["teacher_forcing"], hp["teacher_forcing_decay"],
                                   hp["teacher_forcing_floor"]), CountCalibration()]


def generate(model, spec: DataSpec, primer, num_steps, temperature, threshold, seed):
    """In the graph: the encoder reads the primer once; the decoder writes max(num_steps)
    frames, each drawn with `rng` as `sample` draws it."""
    batch, length = tf.shape(primer)[0], tf.shape(primer)[1]

    def zeros(layer):
        n = 2 if isinstance(layer, keras.layers.LSTM) else 1
        return [tf.zeros([batch, layer.units]) for _ in range(n)]

    def run(layers, x, states):
        new = []
        for layer, state in zip(layers, states):
            x, state = layer.cell(x, state)
            new.append(list(state))
        return x, new

    _, states = tf.while_loop(lambda t, s: t < length,
                              lambda t, s: (t + 1, run(model.encoder, primer[:, t], s)[1]),
                              (0, [zeros(layer) for layer in model.encoder]))
    frame = tf.concat([tf.zeros([batch, spec.keys]), tf.ones([batch, 1])], 1)  # start
    steps = tf.reduce_max(num_steps)

    def body(i, frame, states, out):
        h, states = run(model.decoder, frame, states)
        x = model.draw_frame(model.logits(model.hidden(h)), temperature, threshold,
                             rng.uniform_tf(seed, i, 0, spec.keys),
                             rng.uniform_tf(seed, i, 1, 1)[:, 0])
        return i + 1, tf.concat([x, tf.zeros([batch, 1])], 1), states, out.write(i, x)

    *_, out = tf.while_loop(lambda i, *_: i < steps, body,
                            (0, frame, states, tf.TensorArray(tf.float32, steps)))
    return decoders.batch_major(out.stack())


class Export(Exported):
    """`generate` (piano-roll inputs), `serving_default` (context → the first frame the
    decoder would write), `log_likelihood` (encoder [B, T, keys], target [B, T', keys] →
    nll [B, T'], probs: the target window given the one before)."""

    def main_specs(self) -> list:
        return self.roll_generate_specs()

    def family_signatures(self) -> dict:
        return {"generate": signature(self._generate, self.main_specs()),
                "serving_default": signature(self._next, self.roll_specs("context")),
                "log_likelihood": signature(self._likelihood,
                                            self.roll_specs("encoder", "target"))}

    def _generate(self, primer, num_steps, temperature, threshold, seed):
        with tf.control_dependencies(self.check(
                tf.shape(primer)[0], num_steps, temperature=temperature, threshold=threshold,
                seed=seed) + [
                tf.debugging.assert_greater(tf.shape(primer)[1], 0, message="primer is empty")]):
            frames = generate(self.model, self.spec, primer, num_steps, temperature, threshold,
                              seed)
        return {"frames": keep_rows(frames, num_steps)}

    def _next(self, context):
        states = self.model.encode(context)
        start = tf.concat([tf.zeros_like(context[:, :1]), tf.ones_like(context[:, :1, :1])], -1)
        logits, _ = self.model.decode(start, states)
        return {"probs": tf.sigmoid(logits[:, -1])}

    def _likelihood(self, encoder, target):
        logits = self.model({"encoder": encoder, "decoder": decoder_inputs_tf(target)},
                            training=False)
        return self.roll_nll(target, logits)
