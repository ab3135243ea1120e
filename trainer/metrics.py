"""Metrics for piano-roll outputs (logits): a model that predicts silence must not look good."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("composer")
def note_density(y_true, y_pred):
    """Share of keys the model turns on (real data: about 0.03-0.05 at 88 keys), per step, so
    that sample weights (padding) apply."""
    return ops.mean(ops.cast(y_pred > 0, "float32"), axis=-1)


def roll_metrics() -> list:
    """Precision, recall (threshold: logit 0, i.e. probability 0.5) and note density."""
    return [keras.metrics.Precision(thresholds=0.0, name="precision"),
            keras.metrics.Recall(thresholds=0.0, name="recall"), note_density]
