"""`bilstm`: the stacked LSTM with a bidirectional first layer; it sees the whole window, so it
learns from the window's last target only."""

from __future__ import annotations

import keras

from trainer.data import DataSpec
from trainer.models import common

REPRESENTATIONS = ("notes", "pianoroll")
CHOICES = common.NEXT_STEP_CHOICES
DEFAULTS = dict(common.NEXT_STEP_DEFAULTS, layers=3, units=512)
LAST_ONLY = True


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
