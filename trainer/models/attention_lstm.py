"""`attention_lstm`: LSTM → causal SeqSelfAttention (keras-self-attention) → LSTM → Dense."""

from __future__ import annotations

import keras
from keras_self_attention import SeqSelfAttention

from trainer.data import DataSpec
from trainer.models import common

REPRESENTATIONS = ("notes", "pianoroll")
CHOICES = common.NEXT_STEP_CHOICES
# conditional by default: the key and density of each window join every step (trainer.conditions),
# so the front door keeps its primer's key (or the one asked for) within its 16-epoch budget
DEFAULTS = dict(common.CONDITIONAL_DEFAULTS, condition=True, units=256, attention_units=64,
                attention_width=32)
CUSTOM_OBJECTS = SeqSelfAttention.get_custom_objects()
EPOCHS = 16  # the front door's budget (chorales, split notes, conditional)
MINUTES = 9


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    inp, hidden = common.inputs(spec, hp)
    hidden = keras.layers.LSTM(hp["units"], return_sequences=True, name="lstm_0")(hidden)
    # history_only: position t attends to steps <= t, so every position is a fair target
    hidden = SeqSelfAttention(units=hp["attention_units"], attention_width=hp["attention_width"],
                              history_only=True, attention_activation="sigmoid",
                              name="attention")(hidden)
    hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    hidden = keras.layers.LSTM(hp["units"], return_sequences=True, name="lstm_1")(hidden)
    hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    model = keras.Model(inp, common.heads(spec, hidden, hp, inp), name="attention_lstm")
    return common.compile_next_step(model, spec, hp)
