"""`seq2seq`: encoder-decoder over piano-roll windows, predicting the next window.

The encoder (2 x 256 LSTM or GRU) reads a window; the decoder, started from its state and a
start-of-sequence frame, writes the next window frame by frame. Its head (`head=nade`, the
default) is `rnn_nade`'s joint frame model (`nade`): the decoder's outputs set the biases of a
NADE over the frame's keys, low to high, trained on the frame's exact likelihood (each key
given the true keys below it) and drawn key by key when composing, so a frame's keys are chosen
together. The budget trains it on the benchmark's quarter-note frames, four bars predicting
the next four, teacher-forced throughout. Measured at that budget (QUALITY.md) it clears
every floor of the gate (polyphony 0.68, overall 0.75, 6.06 nats a validation frame).

`head=keys` is the seed's classifier (Dense 256, dropout 0.5, Dense keys: each key's logit on
its own). Its frames are drawn by `draw`: `count` sounds as many keys as the frame's expected
count times `count_scale` (the validation frames' mean keys over the model's mean expected
count, which `CountCalibration` sets after every epoch), drawn in proportion to their odds
(`decoders.counted`); `independent` draws each key on its own, which with a loss whose
probabilities are not calibrated (the seed's focal loss) sounded 12 keys a frame where chorales
have 4. Chosen key by key or by count, its frames have no notion of a note that continues: on
sixteenth-note frames at its old budget the samples settled on one re-struck chord (note
length overlap 0.07-0.11, QUALITY.md).

Teacher forcing can be scheduled (the seed's two-pass scheduled sampling): with probability
1 - ratio a decoder input is the model's own frame, and the ratio decays over epochs
(`TeacherForcingSchedule`: `teacher_forcing_decay` < 1; the default 1.0 keeps it off). That
frame is by default (`own=threshold`, the seed's rule) the keys above `threshold`, or
(`own=draw`) drawn from the same logits as composing draws its frames. With the NADE head the
schedule hurt: polyphony 0.55 with the seed's schedule against 0.68 without (QUALITY.md).
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
from trainer.models import nade

REPRESENTATIONS = ("pianoroll",)
CHOICES = {"cell": ("lstm", "gru"), "loss": ("bce", "focal"), "draw": ("count", "independent"),
           "own": ("draw", "threshold"), "head": ("keys", "nade")}
DEFAULTS = dict(cell="lstm", layers=2, units=256, dense=256, dropout=0.5, learning_rate=1e-3,
                loss="bce", alpha=0.75, gamma=2.0, threshold=0.5, teacher_forcing=1.0,
                teacher_forcing_decay=1.0, teacher_forcing_floor=0.25, draw="count",
                own="threshold", head="nade", nade_hidden=150)
# the JSB Chorales benchmark's frames (a quarter-note grid), transposed ±2 semitones, in windows
# of 2 x 16 frames (four bars, then the next four) in batches of 16
TRAINING = dict(steps_per_quarter=1, encoding="sampled", augment=2, seq_len=16, batch_size=16)
EPOCHS = 12
MINUTES = 17  # 80-88 s an epoch on quiet cores


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Windows of 2T frames: the first T feed the encoder, the last T are the targets (which a
    NADE head also reads: each key's conditional depends on the true keys below it)."""
    items = [pianoroll.to_frames(i) for i in dataset.load_split(folder, split)]
    w = data_lib.windows(items, 2 * config.seq_len, stride=config.seq_len)
    encoder, target = w[:, :config.seq_len], w[:, config.seq_len:]
    x = {"encoder": encoder, "decoder": decoder_inputs(target)}
    return ({**x, "target": target} if config.hparams["head"] == "nade" else x), target


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
                 draw: str = "count", own: str = "threshold", head: str = "keys",
                 nade_hidden: int = 150, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("cell", cell), ("own", own), ("head", head)):
            if value not in CHOICES[name]:
                raise ValueError(f"seq2seq: {name} must be {' or '.join(CHOICES[name])}, "
                                 f"not {value!r}")
        self.keys, self.cell, self.num_layers, self.units = keys, cell, layers, units
        self.dense_units, self.dropout_rate, self.threshold = dense, dropout, threshold
        self.draw, self.own, self.head, self.nade_hidden = draw, own, head, nade_hidden
        rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        self.encoder = [rnn(units, return_sequences=True, return_state=True, name=f"encoder_{i}")
                        for i in range(layers)]
        self.decoder = [rnn(units, return_sequences=True, return_state=True, name=f"decoder_{i}")
                        for i in range(layers)]
        self.dropout = keras.layers.Dropout(dropout)
        if head == "nade":
            self.visible_bias = keras.layers.Dense(keys, name="visible_bias")
            self.hidden_bias = keras.layers.Dense(nade_hidden, name="hidden_bias")
            self.nade = nade.NADE(nade_hidden, name="nade")
        else:
            self.hidden = keras.layers.Dense(dense, activation="relu", name="classifier")
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

    def decode(self, inputs, states, training=False, target=None):
        """Logits for decoder inputs from `states`; returns (logits, new states). A NADE head's
        logits are each key's given the keys below it in `target` (the frames written)."""
        h, new_states = self.run_decoder(inputs, states, training)
        if self.head == "nade":
            return self.nade([*self.biases(h, training), target]), new_states
        return self.logits(self.dropout(self.hidden(h), training=training)), new_states

    def run_decoder(self, inputs, states, training=False):
        """The decoder stack's outputs for `inputs` from `states`: (outputs, new states)."""
        h, new_states = inputs, []
        for layer, state in zip(self.decoder, states):
            h, *state = layer(h, initial_state=state, training=training)
            new_states.append(state)
        return h, new_states

    def biases(self, h, training=False):
        """A NADE head's visible and hidden biases from decoder outputs."""
        h = self.dropout(h, training=training)
        return self.visible_bias(h), self.hidden_bias(h)

    def call(self, inputs, training=False):
        logits, _ = self.decode(inputs["decoder"], self.encode(inputs["encoder"], training),
                                training, inputs.get("target"))
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
        mixed = {**x, "decoder": tf.where(keep, x["decoder"], own)}
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
                "own": self.own, "head": self.head, "nade_hidden": self.nade_hidden}

    def draw_frame(self, logits, temperature, threshold, u, u_count):
        """Frames [B, keys] from key logits [B, keys], by the model's `draw` rule (a NADE head's
        teacher-forced conditionals: each key on its own)."""
        if self.draw == "count" and self.head == "keys":
            return decoders.counted(logits, temperature, threshold, self.count_scale, u, u_count)
        return decoders.bernoulli(logits, temperature, threshold, u)

    def next_frame(self, h, temperature, threshold, seed, step, weights=None):
        """In the graph: the frames [B, keys] the decoder outputs h [B, units] write, drawn
        with `rng` streams 0 (and 1: the count) of `step`; a NADE head draws key by key
        (`weights`: `nade.split_weights`)."""
        u = rng.uniform_tf(seed, step, 0, self.keys)
        if self.head == "nade":
            return nade.draw_keys(*self.biases(h), temperature, threshold, u, weights)[0]
        return self.draw_frame(self.logits(self.hidden(h)), temperature, threshold, u,
                               rng.uniform_tf(seed, step, 1, 1)[:, 0])

    def next_frame_np(self, h, temperature, seeds, step):
        """`next_frame` for one row in NumPy (h [units]), with the same `rng` streams."""
        u = rng.uniform_np(seeds, step, 0, self.keys)[0]
        if self.head == "nade":
            b, c = (np.asarray(t)[0] for t in self.biases(h[None]))
            W, V = (keras.ops.convert_to_numpy(w) for w in (self.nade.W, self.nade.V))
            return nade.draw_frame(b, c, W, V, temperature, 0.0, u)
        logits = np.asarray(self.logits(self.hidden(h[None])))[0]
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
        h, states = model.run_decoder(frame, states)
        out.append(model.next_frame_np(np.asarray(h)[0, -1], temperature, seeds, i))
        frame = np.append(out[-1], 0.0).astype(np.float32)[None, None]
    return np.stack(out)


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    model = Seq2Seq(spec.keys, hp["cell"], hp["layers"], hp["units"], hp["dense"],
                    hp["dropout"], hp["threshold"], hp["draw"], hp["own"], hp["head"],
                    hp["nade_hidden"], name="seq2seq")
    loss = nade.nade_nll if hp["head"] == "nade" else \
        losses.roll_loss(hp["loss"], hp["alpha"], hp["gamma"])
    model.compile(keras.optimizers.Adam(hp["learning_rate"]), loss=loss,
                  metrics=metrics.roll_metrics() + [keys_per_frame, expected_keys])
    frames = np.zeros((1, seq_len or 4, spec.keys), np.float32)
    model({"encoder": frames, "decoder": np.zeros((1, seq_len or 4, spec.keys + 1), np.float32),
           "target": frames})
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
    weights = nade.split_weights(model.nade) if model.head == "nade" else None

    def body(i, frame, states, out):
        h, states = run(model.decoder, frame, states)
        x = model.next_frame(h, temperature, threshold, seed, i, weights)
        return i + 1, tf.concat([x, tf.zeros([batch, 1])], 1), states, out.write(i, x)

    *_, out = tf.while_loop(lambda i, *_: i < steps, body,
                            (0, frame, states, tf.TensorArray(tf.float32, steps)))
    return decoders.batch_major(out.stack())


class Export(Exported):
    """`generate` (piano-roll inputs), `serving_default` (context → probs of the first frame
    the decoder would write; a NADE head's are each key's given the keys below it in the frame
    it draws at threshold 0.5), `log_likelihood` (encoder [B, T, keys], target [B, T', keys] →
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
        h, _ = self.model.run_decoder(start, states)
        if self.model.head == "nade":  # along the frame drawn at threshold 0.5
            b, c = self.model.biases(h[:, -1])
            half = tf.fill(tf.shape(b)[:1], 0.5)
            _, probs = nade.draw_keys(b, c, tf.ones_like(half), half, tf.zeros_like(b),
                                      nade.split_weights(self.model.nade))
            return {"probs": probs}
        return {"probs": tf.sigmoid(self.model.logits(self.model.hidden(h[:, -1])))}

    def _likelihood(self, encoder, target):
        logits = self.model({"encoder": encoder, "decoder": decoder_inputs_tf(target),
                             "target": target}, training=False)
        return self.roll_nll(target, logits)
