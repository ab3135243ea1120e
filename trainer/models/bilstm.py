"""`bilstm`: the stacked LSTM with a bidirectional first layer; it sees the whole window, so it
learns from the window's last target only."""

from __future__ import annotations

import keras
import tensorflow as tf

from trainer import decoders
from trainer.data import DataSpec
from trainer.models import common
from trainer.models.next_step_export import NextStepExport

REPRESENTATIONS = ("notes", "pianoroll")
CHOICES = common.NEXT_STEP_CHOICES
# 2 x 256 with a training window every 8 events (each window teaches one target): 12 epochs
# in 28 min on 2 cores clear every quality floor (QUALITY.md); the seed's 3 x 512 with windows
# at half overlap needed 63 min for its 30 epochs
DEFAULTS = dict(common.NEXT_STEP_DEFAULTS, layers=2, units=256)
LAST_ONLY = True
WINDOW_STRIDE = 8
EPOCHS = 12
MINUTES = 17  # the gate, quiet cores (2026-12-02): 16.2 min; 28 with other work on them


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    inp, hidden = common.inputs(spec, hp)
    for i in range(hp["layers"]):
        lstm = keras.layers.LSTM(hp["units"], return_sequences=i < hp["layers"] - 1,
                                 name=f"lstm_{i}")
        if i == 0:
            lstm = keras.layers.Bidirectional(lstm, name="bilstm_0")
        hidden = lstm(hidden)
        hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    model = keras.Model(inp, common.heads(spec, hidden, hp), name="bilstm")
    return common.compile_next_step(model, spec, hp)


class Export(NextStepExport):
    """The signatures of `lstm` (see there), for a model that reads whole windows: generation
    re-reads a rolling window, and the likelihood reads one window (zero-padded at the start,
    as in training) per position."""

    def make_decoder(self):
        return decoders.Window(self.model, self.spec, self.window)

    def every_position(self, inputs, condition=None):
        pad = tf.zeros_like(inputs[:, :1])
        padded = tf.concat([tf.repeat(pad, self.window - 1, axis=1), inputs], 1)
        windows = tf.signal.frame(padded, self.window, 1, axis=1)  # [B, L, W, ...]
        shape = tf.shape(windows)
        flat = tf.reshape(windows, tf.concat([[-1], shape[2:]], 0))
        out = self.model(flat, training=False)
        return tf.nest.map_structure(
            lambda t: tf.reshape(t, tf.concat([shape[:2], tf.shape(t)[1:]], 0)), out)
