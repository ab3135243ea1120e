"""`refine`: the Deep Symphony seed's refine nets, one model with two heads over a piece's notes.

- velocity: gives every note a velocity learned from the data's performances (in piano MIDI,
  the melody above a softer accompaniment; beats and phrase shapes), where a generator wrote
  one flat velocity;
- duration: snaps each note's duration to what the beat and its neighbours suggest, trained to
  undo random jitter of the data's own durations.

A bidirectional LSTM reads the whole note sequence (the `performance` representation): pitch,
position in a 4/4 bar, duration, time since the previous onset, and whether the note is the top
or the bottom one of its onset. Padding rows have duration 0 and are left out of the losses.
Note: the bundled chorales are scores, every velocity the same; train the velocity head on
performed MIDI (`--data my_piano_midi/`) for it to learn dynamics.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from preprocessing import dataset, performance
from preprocessing.piece import InputError
from trainer import data as data_lib
from trainer.data import DataSpec
from trainer.export.base import Exported, signature, spec

REPRESENTATIONS = ("performance",)
DEFAULTS = dict(units=128, layers=2, dense=128, dropout=0.2, corrupt=0.5, learning_rate=1e-3)
GENERATES = False
FIELDS = performance.FIELDS[:3]  # the inputs; velocity is a target


def corrupt(durations: np.ndarray, share: float, max_duration: int,
            rng: np.random.Generator) -> np.ndarray:
    """Durations with `share` of the notes jittered by 1-2 steps or, one time in four,
    replaced by any length: what the duration head learns to undo. Padding (0) stays."""
    hit = (rng.random(durations.shape) < share) & (durations > 0)
    jitter = rng.choice([-2, -1, 1, 2], durations.shape)
    anything = rng.integers(1, max_duration + 1, durations.shape)
    out = np.where(rng.random(durations.shape) < 0.25, anything, durations + jitter)
    return np.where(hit, np.clip(out, 1, max_duration), durations).astype(np.int32)


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Windows of `seq_len` notes: inputs with jittered durations; targets velocity / 127 (-1
    on padding) and the true duration (0 on padding)."""
    items = dataset.load_split(folder, split)
    if not items:
        raise InputError(f"no {split} pieces")
    rows = data_lib.windows(items, config.seq_len)  # [N, L, 4]; padding rows are all zeros
    pad = rows[..., 2] == 0
    rng = np.random.default_rng([config.seed, ("train", "validation", "test").index(split)])
    x = {"pitch": rows[..., 0], "onset": rows[..., 1],
         "duration": corrupt(rows[..., 2], config.hparams["corrupt"], spec.max_duration, rng)}
    y = {"velocity": np.where(pad, -1.0, rows[..., 3] / 127.0).astype(np.float32),
         "duration": rows[..., 2].astype(np.int32)}
    return {k: v.astype(np.int32) for k, v in x.items()}, y


@keras.saving.register_keras_serializable("composer")
def masked_mse(y_true, y_pred):
    """Mean squared error over the notes whose target is >= 0 (padding is -1), per window."""
    y_true = keras.ops.cast(y_true, "float32")
    y_pred = keras.ops.reshape(y_pred, keras.ops.shape(y_true))
    mask = keras.ops.cast(y_true >= 0, "float32")
    total = keras.ops.sum(mask * keras.ops.square(y_true - y_pred), -1)
    return total / keras.ops.maximum(keras.ops.sum(mask, -1), 1.0)


@keras.saving.register_keras_serializable("composer")
def masked_crossentropy(y_true, y_pred):
    """Sparse cross-entropy from logits over the notes whose class is > 0, per window."""
    y_true = keras.ops.cast(y_true, "int32")
    mask = keras.ops.cast(y_true > 0, "float32")
    ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return keras.ops.sum(mask * ce, -1) / keras.ops.maximum(keras.ops.sum(mask, -1), 1.0)


def _shifted(x, fill, direction: int):
    """x moved one note later (direction 1: each note sees the previous) or earlier (-1)."""
    if direction > 0:
        return keras.ops.concatenate([fill(x[:, :1]), x[:, :-1]], axis=1)
    return keras.ops.concatenate([x[:, 1:], fill(x[:, -1:])], axis=1)


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    top = spec.max_duration
    bar = 4 * spec.steps_per_quarter
    inputs = {f: keras.Input((None,), dtype="int32", name=f) for f in FIELDS}
    pitch, onset, duration = (inputs[f] for f in FIELDS)
    # a padding neighbour (duration 0) counts as none, as at the ends of a sequence
    previous = keras.ops.where(_shifted(duration, keras.ops.zeros_like, 1) > 0,
                               _shifted(onset, lambda t: t - top, 1), onset - top)
    following = keras.ops.where(_shifted(duration, keras.ops.zeros_like, -1) > 0,
                                _shifted(onset, lambda t: t + top, -1), onset + top)
    since = keras.ops.clip(onset - previous, 0, top)
    is_top = keras.ops.cast(keras.ops.not_equal(onset, previous), "float32")
    is_bottom = keras.ops.cast(keras.ops.not_equal(onset, following), "float32")
    valid = keras.ops.cast(duration > 0, "float32")
    features = keras.layers.Concatenate()([
        keras.layers.Embedding(128, 16, name="pitch_embedding")(keras.ops.clip(pitch, 0, 127)),
        keras.layers.Embedding(bar, 8, name="position_embedding")(keras.ops.mod(onset, bar)),
        keras.layers.Embedding(top + 1, 16, name="duration_embedding")(
            keras.ops.clip(duration, 0, top)),
        keras.layers.Embedding(top + 1, 8, name="since_embedding")(since),
        keras.ops.stack([is_top, is_bottom, valid], axis=-1)])
    hidden, mask = features, duration > 0  # padding neither read nor carried across
    for i in range(hp["layers"]):
        hidden = keras.layers.Bidirectional(
            keras.layers.LSTM(hp["units"], return_sequences=True), name=f"bilstm_{i}")(
                hidden, mask=mask)
        hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    hidden = keras.ops.where(mask[..., None], hidden, 0.0)  # the losses mask on their own
    hidden = keras.layers.Dense(hp["dense"], activation="relu", name="dense")(hidden)
    outputs = {"velocity": keras.layers.Dense(1, activation="sigmoid",
                                              name="velocity_head")(hidden),
               "duration": keras.layers.Dense(top + 1, name="duration_head")(hidden)}
    model = keras.Model(inputs, outputs, name="refine")
    model.compile(keras.optimizers.Adam(hp["learning_rate"]),
                  loss={"velocity": masked_mse, "duration": masked_crossentropy})
    return model


class Export(Exported):
    """`refine` (also `serving_default`): pitch, onset, duration [B, N] int32 (rows sorted by
    onset, top voice first, `preprocessing.performance`; duration 0 pads) → velocity (1-127)
    and snapped duration (grid steps) [B, N]; padding comes back as it went in."""

    def main_specs(self) -> list:
        return [spec([None, None], tf.int32, name) for name in FIELDS]

    def family_signatures(self) -> dict:
        refine = signature(self._refine, self.main_specs())
        return {"serving_default": refine, "refine": refine}

    def _refine(self, pitch, onset, duration):
        with tf.control_dependencies([
                tf.debugging.assert_equal(tf.shape(onset), tf.shape(pitch),
                                          message="onset: one per pitch"),
                tf.debugging.assert_equal(tf.shape(duration), tf.shape(pitch),
                                          message="duration: one per pitch"),
                tf.debugging.assert_non_negative(duration, message="duration must be >= 0")]):
            out = self.model({"pitch": pitch, "onset": onset, "duration": duration},
                             training=False)
        valid = duration > 0
        velocity = tf.cast(tf.round(out["velocity"][..., 0] * 127.0), tf.int32)
        snapped = tf.argmax(out["duration"][..., 1:], -1, output_type=tf.int32) + 1
        return {"velocity": tf.where(valid, tf.clip_by_value(velocity, 1, 127), 0),
                "duration": tf.where(valid, snapped, duration)}
