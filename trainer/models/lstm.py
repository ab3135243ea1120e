"""`lstm`: stacked LSTM (the seeds' 3 x 512, dropout 0.3, Dense 256), trained on every position.

Conditional by default (`condition=true`, the conditional Char-RNN seed): every step reads the
window's key, range and note density, so a sample stays in its primer's key and `--key` /
`--density` steer it. At 15 epochs the unconditional model drifted out of key (scale
consistency overlap 0.25, below the gate's floor) where the conditional one cleared every floor
(QUALITY.md); `condition=false` trains the seed's plain model.
"""

from __future__ import annotations

import keras

from trainer.data import DataSpec
from trainer.models import common

REPRESENTATIONS = ("notes", "pianoroll")
CHOICES = common.NEXT_STEP_CHOICES
DEFAULTS = dict(common.CONDITIONAL_DEFAULTS, condition=True, layers=3, units=512)
# the conditional 3 x 512 on the chorales' split notes: 118-123 s an epoch on the gate's quiet
# cores of 2026-12-02 morning (15 epochs: 30.4 min), 57-87 s on the machine of that afternoon
# (14 epochs: 15.9 min, every floor passing; QUALITY.md)
EPOCHS = 14
MINUTES = 29


def build(spec: DataSpec, hp: dict, seq_len: int | None = None,
          last_only: bool = False) -> keras.Model:
    """A compiled next-step model; `last_only` predicts from the last position only (seq-to-one)."""
    inp, hidden = common.inputs(spec, hp)
    for i in range(hp["layers"]):
        hidden = keras.layers.LSTM(hp["units"], return_sequences=True, name=f"lstm_{i}")(hidden)
        hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    if last_only:
        hidden = hidden[:, -1]
    model = keras.Model(inp, common.heads(spec, hidden, hp, inp), name="lstm")
    return common.compile_next_step(model, spec, hp)
