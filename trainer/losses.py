"""Losses for piano-roll outputs (logits)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("composer")
class FocalLoss(keras.losses.Loss):
    """Binary focal loss on logits (Lin et al.): down-weights the easy, mostly silent, frames.

    Args:
        alpha: weight of the positive (note-on) class.
        gamma: focusing exponent; 0 gives weighted binary cross-entropy.
    """

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, name: str = "focal", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.gamma = alpha, gamma

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        ce = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
        p = ops.sigmoid(y_pred)
        p_t = y_true * p + (1 - y_true) * (1 - p)
        alpha_t = y_true * self.alpha + (1 - y_true) * (1 - self.alpha)
        return ops.mean(alpha_t * (1 - p_t) ** self.gamma * ce, axis=-1)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


def roll_loss(name: str, alpha: float = 0.75, gamma: float = 2.0) -> keras.losses.Loss:
    """"bce" (binary cross-entropy on logits) or "focal"."""
    if name == "focal":
        return FocalLoss(alpha, gamma)
    if name == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    raise ValueError(f"unknown loss {name!r}; choose bce or focal")
