"""Inputs, output heads and compilation shared by the next-step families."""

from __future__ import annotations

import keras

from trainer import losses, metrics
from trainer.data import DataSpec

NEXT_STEP_CHOICES = {"loss": ("bce", "focal")}
NEXT_STEP_DEFAULTS = dict(embedding=64, dense=256, dropout=0.3, learning_rate=1e-3,
                          loss="bce", alpha=0.75, gamma=2.0)


def inputs(spec: DataSpec, hp: dict):
    """The model input and its per-step features: field embeddings (notes) or frames (rolls).

    Any length of input is accepted (generation runs over whole histories). The token
    embedding has `hp["embedding"]` dimensions; duration and shift at most 16.
    """
    if spec.representation == "notes":
        events = keras.Input((None, 3), dtype="int32", name="events")
        embedded = [keras.layers.Embedding(
            n, hp["embedding"] if f == "token" else min(16, hp["embedding"]),
            name=f"{f}_embedding")(events[..., i]) for i, (f, n) in enumerate(spec.classes.items())]
        return events, keras.layers.Concatenate()(embedded)
    frames = keras.Input((None, spec.keys), name="frames")
    return frames, frames


def heads(spec: DataSpec, hidden, hp: dict):
    """Dense + dropout, then logits: one head per event field (notes) or one per key (rolls)."""
    hidden = keras.layers.Dense(hp["dense"], activation="relu", name="dense")(hidden)
    hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    if spec.representation == "notes":
        return {f: keras.layers.Dense(n, name=f)(hidden) for f, n in spec.classes.items()}
    return keras.layers.Dense(spec.keys, name="frame")(hidden)


def compile_next_step(model: keras.Model, spec: DataSpec, hp: dict) -> keras.Model:
    optimizer = keras.optimizers.Adam(hp["learning_rate"])
    if spec.representation == "notes":
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer, loss={f: ce for f in spec.classes},
                      metrics={f: ["accuracy"] for f in spec.classes})
    else:
        model.compile(optimizer, loss=losses.roll_loss(hp["loss"], hp["alpha"], hp["gamma"]),
                      metrics=metrics.roll_metrics())
    return model
