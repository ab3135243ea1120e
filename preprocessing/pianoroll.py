"""The `pianoroll` representation: 88 keys (MIDI 21-108) on a grid of steps.

Three encodings:
- `active`: [T, 88], 1 where a key sounds at any time in the step (notes rounded to the grid,
  each at least one step long). A note repeated without a gap merges with the one before it.
- `sampled`: [T, 88], 1 where a key sounds at the step's start: the polyphonic-music benchmarks'
  frames (JSB Chorales at one step per quarter note holds what sounds on each beat, so a passing
  eighth note between beats is not in it). Decoded as `active`.
- `onset-sustain`: [T, 88, 2], (1, 0) where a note starts, (0, 1) where it is held, (0, 0) off
  (the seeds' format); exact on the grid.
"""

from __future__ import annotations

import numpy as np

from preprocessing.piece import Piece, from_notes, quantize

LOWEST, KEYS = 21, 88
ENCODINGS = ("active", "sampled", "onset-sustain")
EPSILON = 1e-6  # in steps: a time within this of a step counts as on it


def piece_to_roll(piece: Piece, steps_per_quarter: int = 4,
                  encoding: str = "active") -> np.ndarray:
    """Encodes a piece; notes outside the piano's range are left out."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown piano-roll encoding {encoding!r}; choose from {ENCODINGS}")
    if encoding == "sampled":  # the steps t with start <= t < end
        onset = np.ceil(piece.start * steps_per_quarter - EPSILON).astype(np.int64)
        length = np.ceil((piece.start + piece.duration) * steps_per_quarter
                         - EPSILON).astype(np.int64) - onset
    else:
        onset, length = quantize(piece, steps_per_quarter)
    key = piece.pitch.astype(np.int64) - LOWEST
    keep = (key >= 0) & (key < KEYS) & (length > 0)
    onset, length, key = onset[keep], length[keep], key[keep]
    steps = int((onset + length).max()) if len(onset) else 0
    # +1 / -1 at each note's ends, summed over time: how many notes hold each key
    delta = np.zeros((steps + 1, KEYS), np.int32)
    np.add.at(delta, (onset, key), 1)
    np.add.at(delta, (onset + length, key), -1)
    active = (np.cumsum(delta, axis=0)[:steps] > 0).astype(np.uint8)
    if encoding != "onset-sustain":
        return active
    roll = np.zeros((steps, KEYS, 2), np.uint8)
    roll[onset, key, 0] = 1
    roll[..., 1] = active & (1 - roll[..., 0])
    return roll


def to_frames(roll: np.ndarray) -> np.ndarray:
    """A roll as float32 model frames [T, keys]: onset-sustain [T, 88, 2] becomes onsets then holds
    ([T, 176])."""
    roll = np.asarray(roll, np.float32)
    return np.concatenate([roll[..., 0], roll[..., 1]], axis=-1) if roll.ndim == 3 else roll


def from_frames(frames: np.ndarray, encoding: str) -> np.ndarray:
    """`to_frames` undone: [T, 88] stays, [T, 176] becomes [T, 88, 2] for onset-sustain."""
    frames = np.asarray(frames)
    return np.stack([frames[:, :KEYS], frames[:, KEYS:]], -1) if encoding == "onset-sustain" \
        else frames


def roll_to_piece(roll: np.ndarray, steps_per_quarter: int = 4, qpm: float = 120.0,
                  name: str = "generated") -> Piece:
    """Decodes either encoding (chosen by the array's rank) back to a piece."""
    roll = np.asarray(roll) > 0.5
    off = np.zeros((1, KEYS), bool)
    if roll.ndim == 2:
        on, onsets = roll, off
    else:
        on, onsets = roll[..., 0] | roll[..., 1], roll[..., 0]
    # a note starts at an onset or where a key turns on, and ends before the next start or off
    starts = on & (onsets | ~np.vstack([off, on[:-1]]))
    ends = on & ~np.vstack([on[1:], off]) | on & np.vstack([starts[1:], off])
    keys, start_steps = np.nonzero(starts.T)
    _, end_steps = np.nonzero(ends.T)
    rows = np.stack([keys + LOWEST, start_steps / steps_per_quarter,
                     (end_steps - start_steps + 1) / steps_per_quarter], axis=1)
    return from_notes(rows, name=name, qpm=qpm)
