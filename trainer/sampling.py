"""Step-by-step sampling in NumPy around a Keras model: the sample callback's, and the reference
that the in-graph loops of `decoders` are tested against (same draws, from `rng`)."""

from __future__ import annotations

import numpy as np

from preprocessing import notes, pianoroll
from preprocessing.piece import Piece
from trainer import rng
from trainer.data import DataSpec

NEG = np.float32(-1e9)
BANNED = {"token": 1, "duration": 1, "shift": 0}  # never drawn: the OOV token, duration 0


def categorical(logits, temperature: float, top_k: int, u, banned: int = 0) -> int:
    """`decoders.categorical` for one row."""
    logits = np.asarray(logits, np.float32) / np.float32(temperature)
    logits[:banned] = NEG
    if top_k > 0:
        kth = np.sort(logits)[::-1][min(top_k, len(logits)) - 1]
        logits = np.where(logits < kth, NEG, logits)
    return int(np.argmax(logits - np.log(-np.log(u))))


def bernoulli(logits, temperature: float, threshold: float, u) -> np.ndarray:
    """`decoders.bernoulli` for one row."""
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float32) / np.float32(temperature)))
    return ((p > threshold) if threshold > 0 else (u < p)).astype(np.float32)


def counted(logits, temperature: float, threshold: float, scale: float, u,
            u_count: float) -> np.ndarray:
    """`decoders.counted` for one row."""
    z = np.asarray(logits, np.float32) / np.float32(temperature)
    p = (1 / (1 + np.exp(-z))).astype(np.float32)
    if threshold > 0:
        return (p > threshold).astype(np.float32)
    count = np.floor(np.float32(scale) * p.sum(dtype=np.float32) + np.float32(u_count))
    rank = np.argsort(np.argsort(-(z - np.log(-np.log(u))), kind="stable"), kind="stable")
    return (rank < count).astype(np.float32)


def steps_of(primer):
    """A primer's steps: itself, or a conditional model's {"events" | "frames": steps,
    "condition": [SIZE]}'s steps."""
    if isinstance(primer, dict):
        return next(v for k, v in primer.items() if k != "condition")
    return primer


def sample(model, spec: DataSpec, primer: np.ndarray, steps: int, temperature: float = 1.0,
           seed: int = 0, window: int | None = None, top_k: int = 0,
           threshold: float = 0.0) -> np.ndarray:
    """Continues `primer` by `steps` drawn steps, re-running the model over the history each
    step (over the last `window` steps, zero-padded, for models that read whole windows).

    `primer` is an array of steps, or for conditional models {"events" | "frames": steps,
    "condition": [SIZE]}.

    Returns:
        Only the new steps: [steps, 3] events or [steps, keys] frames.
    """
    condition = None
    if isinstance(primer, dict):
        condition = np.asarray(primer["condition"], np.float32)[None]
        name = next(k for k in primer if k != "condition")
        primer = steps_of(primer)
    seq = list(np.asarray(primer))
    seeds = np.asarray([seed], np.int64)
    call = _traced(model)
    for i in range(steps):
        history = np.asarray(seq)
        if window is not None:
            history = history[-window:]
            pad = np.zeros((window - len(history), *history.shape[1:]), history.dtype)
            history = np.concatenate([pad, history])
        x = history[None] if condition is None else {name: history[None], "condition": condition}
        out = call(x)
        if spec.representation == "notes":
            event = [categorical(_last(out[f]), temperature, top_k,
                                 rng.uniform_np(seeds, i, s, c)[0], BANNED[f])
                     for s, (f, c) in enumerate(spec.classes.items())]
            seq.append(np.asarray(event, np.int32))
        else:
            seq.append(bernoulli(_last(out), temperature, threshold,
                                 rng.uniform_np(seeds, i, 0, spec.keys)[0]))
    return np.asarray(seq[len(primer):])


def _traced(model):
    """`model(x, training=False)` as one graph for histories of any length: a recurrent Keras
    model called eagerly runs its loop op by op (bench/sample_speed.py: 64 steps of the front
    door's attention_lstm in 70.9 s eagerly, 3.7 s traced), and the graph draws the same steps.
    A new function per `sample` call: two traces each, none kept on the model."""
    import tensorflow as tf  # here: `trainer.models` imports this module before TensorFlow

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _last(output) -> np.ndarray:
    """Logits of the last position, for models that output every position or only the last."""
    output = np.asarray(output)[0]
    return output[-1] if output.ndim == 2 else output


def to_piece(spec: DataSpec, steps: np.ndarray, vocab: notes.Vocabulary | None = None) -> Piece:
    """Decodes generated steps (event ids or frames) to a piece."""
    if spec.representation == "notes":
        return notes.events_to_piece(vocab.decode(steps), spec.steps_per_quarter)
    return pianoroll.roll_to_piece(pianoroll.from_frames(steps, spec.encoding),
                                   spec.steps_per_quarter)


def with_primer(spec: DataSpec, primer, steps: np.ndarray,
                vocab: notes.Vocabulary | None = None) -> tuple[Piece, float]:
    """The primer (steps, or a conditional model's dict of steps and condition) followed by
    `steps`, as one piece, and where the primer ends in quarter notes."""
    primer = np.asarray(steps_of(primer))
    if spec.representation == "notes":
        end = int(primer[:, list(spec.classes).index("shift")].sum())
    else:
        end = len(primer)
    return (to_piece(spec, np.concatenate([primer, np.asarray(steps, primer.dtype)]), vocab),
            end / spec.steps_per_quarter)
