"""The `performance` representation (the refine nets' input): one row per note on the grid.

A row is (pitch, onset, duration, velocity), onset and duration in grid steps (duration at
least 1, at most `max_duration`), sorted by onset and, within an onset, from the highest pitch
down, so that the first note of an onset is its top voice.
"""

from __future__ import annotations

import numpy as np

from preprocessing.piece import Piece, from_notes, quantize

FIELDS = ("pitch", "onset", "duration", "velocity")


def note_order(piece: Piece, steps_per_quarter: int = 4) -> np.ndarray:
    """The piece's note indices in row order: by grid onset, then from the highest pitch."""
    onset, _ = quantize(piece, steps_per_quarter)
    return np.lexsort((-piece.pitch.astype(np.int64), onset))


def piece_to_rows(piece: Piece, steps_per_quarter: int = 4, max_duration: int = 32) -> np.ndarray:
    """int32 [n, 4] rows of (pitch, onset, duration, velocity)."""
    onset, length = quantize(piece, steps_per_quarter)
    order = note_order(piece, steps_per_quarter)
    rows = np.stack([piece.pitch[order], onset[order],
                     np.clip(length[order], 1, max_duration),
                     np.clip(piece.velocity[order], 1, 127)], axis=1)
    return rows.astype(np.int32).reshape(-1, 4)


def rows_to_piece(rows: np.ndarray, steps_per_quarter: int = 4, qpm: float = 120.0,
                  name: str = "refined") -> Piece:
    rows = np.asarray(rows).reshape(-1, 4)
    return from_notes([(int(p), o / steps_per_quarter, d / steps_per_quarter, int(v))
                       for p, o, d, v in rows], name=name, qpm=qpm)
