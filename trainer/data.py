"""Preprocessed pieces → training windows → tf.data pipelines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from preprocessing import dataset, pianoroll
from preprocessing.notes import Vocabulary
from preprocessing.piece import InputError

NOTE_FIELDS = ("token", "duration", "shift")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data.

    Attributes:
        representation: "notes", "pianoroll", "bars" or "performance".
        steps_per_quarter: the grid.
        vocab_size, max_duration, max_shift: `notes`: classes of the three event fields
            (`performance`: max_duration, the longest duration in steps).
        keys: `pianoroll`: values per frame (88, or 176 for onset-sustain: onsets then holds).
        encoding: `pianoroll` encoding.
        chords: `notes`: "split" (a note per event) or "classes" (a chord per event).
    """

    representation: str
    steps_per_quarter: int = 4
    vocab_size: int = 0
    max_duration: int = 0
    max_shift: int = 0
    keys: int = 88
    encoding: str = "active"
    chords: str = ""

    @property
    def classes(self) -> dict[str, int]:
        """Classes per `notes` field (durations and shifts are their own step counts)."""
        return {"token": self.vocab_size, "duration": self.max_duration + 1,
                "shift": self.max_shift + 1}


def prepare(inputs: list[str], folder: Path, settings: dataset.Settings,
            progress: bool = True) -> tuple[DataSpec, dict]:
    """Encodes `inputs` into `folder` (parse cache shared with `python -m preprocessing`)."""
    summary = dataset.build(inputs, folder, settings, progress=progress)
    return spec_of(folder), summary


def spec_of(folder: Path) -> DataSpec:
    meta = dataset.load_meta(folder)
    s = meta["settings"]
    if s["representation"] == "notes":
        vocab = Vocabulary.load(Path(folder) / "vocab.json")
        return DataSpec("notes", s["steps_per_quarter"], len(vocab.tokens), vocab.max_duration,
                        vocab.max_shift, chords=s.get("chords", "classes"))
    if s["representation"] == "performance":
        return DataSpec("performance", s["steps_per_quarter"], max_duration=s["max_duration"])
    keys = 176 if s["encoding"] == "onset-sustain" else 88
    return DataSpec(s["representation"], s["steps_per_quarter"], keys=keys,
                    encoding=s["encoding"])


PAD = -1  # next-step targets inside a short piece's left padding: they never count


def windows(pieces: list[np.ndarray], length: int, stride: int | None = None,
            mask: bool = False):
    """Every window of `length` steps (stride `stride`, default length // 2) of every piece.

    A piece shorter than a window gives one window, padded at the start with zeros (the OOV /
    silent frame), so short pieces still count. With `mask`, also returns which steps are the
    piece's own (bool [N, length]: False on padding).
    """
    stride = stride or max(1, length // 2)
    out, valid = [], []
    for piece in pieces:
        if len(piece) < 2:
            continue
        pad = max(0, length - len(piece))
        if pad:
            piece = np.concatenate([np.zeros((pad, *piece.shape[1:]), piece.dtype), piece])
        starts = list(range(0, len(piece) - length + 1, stride))
        if starts[-1] != len(piece) - length:  # the piece's last steps are targets too
            starts.append(len(piece) - length)
        out.extend(piece[s:s + length] for s in starts)
        valid.extend(np.arange(s, s + length) >= pad for s in starts)
    if not out:
        raise InputError("no training windows: the data holds no piece with two or more steps")
    return (np.stack(out), np.stack(valid)) if mask else np.stack(out)


def next_step_arrays(folder: Path, split: str, spec: DataSpec, seq_len: int,
                     last_only: bool = False, stride: int | None = None):
    """(inputs, targets) for next-step prediction: targets are inputs shifted by one step.
    Targets inside a short piece's left padding are `PAD` (every field, every key):
    `sample_weights` turns them into zero weights.

    Args:
        last_only: targets of the last position only (seq-to-one), as for models that see the
            whole window.
    """
    items = dataset.load_split(folder, split)
    items = items if spec.representation == "notes" else [pianoroll.to_frames(i) for i in items]
    w, valid = windows(items, seq_len + 1, stride, mask=True)
    x, y = w[:, :-1], np.where(valid[:, 1:, None], w[:, 1:], PAD).astype(w.dtype)
    if last_only:
        y = y[:, -1]  # the piece's own: padding only ever precedes it
    if spec.representation == "notes":
        return x.astype(np.int32), {f: y[..., i].astype(np.int32)
                                    for i, f in enumerate(NOTE_FIELDS)}
    return x, y


def sample_weights(y):
    """(targets, weights) for `fit`: `PAD` targets become 0 with weight 0, every other step
    weight 1 (one array per output for dict targets); weights are None when nothing is padded
    (and for targets that are not next-step sequences)."""
    first = y["token"] if isinstance(y, dict) and "token" in y else y
    if not isinstance(first, np.ndarray) or first.ndim < 2 or not (first == PAD).any():
        return y, None
    pad = first == PAD if first.ndim == 2 else (first == PAD).all(axis=-1)
    weights = (~pad).astype(np.float32)
    if isinstance(y, dict):
        return ({k: np.where(v == PAD, 0, v).astype(v.dtype) for k, v in y.items()},
                {k: weights for k in y})
    return np.where(y == PAD, 0, y).astype(y.dtype), weights


def segment_arrays(folder: Path, split: str, length: int) -> np.ndarray:
    """Piano-roll segments of `length` frames (half-overlapping) of a split, float32, for the
    models that read whole segments (vae, wgan_gp)."""
    items = [pianoroll.to_frames(i) for i in dataset.load_split(folder, split)]
    if not items:
        raise InputError(f"no {split} pieces")
    return windows(items, length).astype(np.float32)


def rows(x) -> int:
    """Examples in an array or a dict of arrays."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def to_dataset(x, y, batch_size: int, shuffle: bool, seed: int):
    """A batched, prefetched tf.data pipeline; shuffling is seeded, so runs repeat."""
    import tensorflow as tf

    y, weights = sample_weights(y)
    ds = tf.data.Dataset.from_tensor_slices((x, y) if weights is None else (x, y, weights))
    if shuffle:
        ds = ds.shuffle(rows(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
