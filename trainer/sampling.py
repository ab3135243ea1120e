"""Step-by-step sampling in Python: the sample callback's, and the reference for in-graph loops."""

from __future__ import annotations

import numpy as np

from preprocessing import notes, pianoroll
from preprocessing.piece import Piece
from trainer.data import NOTE_FIELDS, DataSpec


def sample(model, spec: DataSpec, primer: np.ndarray, steps: int, temperature: float = 1.0,
           seed: int = 0, seq_len: int = 64) -> np.ndarray:
    """Continues `primer` by `steps` sampled steps; returns only the new steps.

    Notes models sample each event field from its softmax (the OOV token and zero durations are
    never drawn); roll models draw every key from its Bernoulli.
    """
    rng = np.random.default_rng(seed)
    seq = list(np.asarray(primer))
    for _ in range(steps):
        out = model(np.asarray(seq[-seq_len:])[None], training=False)
        if spec.representation == "notes":
            event = []
            for field in NOTE_FIELDS:
                logits = _last(out[field]) / temperature
                logits[: 1 if field in ("token", "duration") else 0] = -np.inf
                p = np.exp(logits - logits.max())
                event.append(rng.choice(len(p), p=p / p.sum()))
            seq.append(np.asarray(event, np.int32))
        else:
            p = 1 / (1 + np.exp(-_last(out) / temperature))
            seq.append((rng.random(len(p)) < p).astype(np.float32))
    return np.asarray(seq[len(primer):])


def _last(output) -> np.ndarray:
    """Logits of the last position, for models that output every position or only the last."""
    output = np.asarray(output, np.float64)[0]
    return output[-1] if output.ndim == 2 else output


def to_piece(spec: DataSpec, steps: np.ndarray, vocab: notes.Vocabulary | None = None) -> Piece:
    """Decodes generated steps (event ids or frames) to a piece."""
    if spec.representation == "notes":
        return notes.events_to_piece(vocab.decode(steps), spec.steps_per_quarter)
    frames = np.asarray(steps)
    if spec.encoding == "onset-sustain":
        frames = np.stack([frames[:, :88], frames[:, 88:]], axis=-1)
    return pianoroll.roll_to_piece(frames, spec.steps_per_quarter)
