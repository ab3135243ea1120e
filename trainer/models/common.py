"""Inputs, output heads and compilation shared by the next-step families."""

from __future__ import annotations

import keras

from trainer import conditions, losses, metrics
from trainer.data import DataSpec

NEXT_STEP_CHOICES = {"loss": ("bce", "focal")}
NEXT_STEP_DEFAULTS = dict(embedding=64, dense=256, dropout=0.3, learning_rate=1e-3,
                          loss="bce", alpha=0.75, gamma=2.0)
CONDITIONAL_DEFAULTS = dict(NEXT_STEP_DEFAULTS, condition=False)  # families that can condition


def inputs(spec: DataSpec, hp: dict):
    """The model input and its per-step features: field embeddings (notes) or frames (rolls).

    Any length of input is accepted (generation runs over whole histories). The token
    embedding has `hp["embedding"]` dimensions; duration and shift at most 16. With
    `hp["condition"]` the input is {"events" | "frames", "condition"} and the condition vector
    (`trainer.conditions`, standardised) joins the features of every step; `heads` reads it
    again, so it reaches the outputs directly too.
    """
    if spec.representation == "notes":
        steps = keras.Input((None, 3), dtype="int32", name="events")
        features = keras.layers.Concatenate()([keras.layers.Embedding(
            n, hp["embedding"] if f == "token" else min(16, hp["embedding"]),
            name=f"{f}_embedding")(steps[..., i]) for i, (f, n) in enumerate(spec.classes.items())])
    else:
        steps = keras.Input((None, spec.keys), name="frames")
        features = steps
    if not hp.get("condition"):
        return steps, features
    condition = keras.Input((conditions.SIZE,), name="condition")
    features = keras.layers.Concatenate(name="conditioned")([features,
                                                             every_step(condition, features)])
    return {input_name(spec): steps, "condition": condition}, features


def every_step(condition, like):
    """The standardised condition [B, SIZE] repeated along the steps of `like` [B, T, F] (or
    as it is, for `like` [B, F] with no steps)."""
    scaled = conditions.standardized(condition)
    if len(like.shape) == 2:
        return scaled
    return keras.ops.ones_like(like[..., :1]) * scaled[:, None, :]


def input_name(spec: DataSpec) -> str:
    return "events" if spec.representation == "notes" else "frames"


def heads(spec: DataSpec, hidden, hp: dict, inputs=None):
    """Dense + dropout, then logits: one head per event field (notes) or one per key (rolls).
    A conditional model's `inputs` hold the condition, which the dense layer reads too."""
    if isinstance(inputs, dict) and "condition" in inputs:
        hidden = keras.layers.Concatenate(name="head_conditioned")(
            [hidden, every_step(inputs["condition"], hidden)])
    hidden = keras.layers.Dense(hp["dense"], activation="relu", name="dense")(hidden)
    hidden = keras.layers.Dropout(hp["dropout"])(hidden)
    if spec.representation == "notes":
        return {f: keras.layers.Dense(n, name=f)(hidden) for f, n in spec.classes.items()}
    return keras.layers.Dense(spec.keys, name="frame")(hidden)


def compile_next_step(model: keras.Model, spec: DataSpec, hp: dict) -> keras.Model:
    """Metrics are weighted: the sample weights that leave padding out of the loss
    (`data.sample_weights`) leave it out of them too."""
    optimizer = keras.optimizers.Adam(hp["learning_rate"])
    if spec.representation == "notes":
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(optimizer, loss={f: ce for f in spec.classes},
                      weighted_metrics={f: ["accuracy"] for f in spec.classes})
    else:
        model.compile(optimizer, loss=losses.roll_loss(hp["loss"], hp["alpha"], hp["gamma"]),
                      weighted_metrics=metrics.roll_metrics())
    return model
