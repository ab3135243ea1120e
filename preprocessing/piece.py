"""The one in-memory form every reader produces and every representation consumes."""

from __future__ import annotations

import dataclasses

import numpy as np

PITCH_CLASS_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
# music21's spelling: MIDI 60 is C4. In octave -1, naturals are written with "n" ("En-1"), so
# they differ from flats in octave 1 ("E-1"): every name is unique.
PITCH_NAMES = tuple(
    f"{PITCH_CLASS_NAMES[p % 12]}{'n' if p < 12 and len(PITCH_CLASS_NAMES[p % 12]) == 1 else ''}"
    f"{p // 12 - 1}" for p in range(128))
PITCH_BY_NAME = {name: p for p, name in enumerate(PITCH_NAMES)}


class InputError(ValueError):
    """A file or argument that cannot be used; the message is one line naming it."""


@dataclasses.dataclass
class Piece:
    """A piece as parallel note arrays, times in quarter notes.

    Attributes:
        name: where it came from (a path, plus `#N` for the Nth tune of a multi-tune file).
        digest: hex digest of the source's content; decides the split and keys caches.
        pitch: MIDI pitch per note, int16.
        start: onset per note in quarter notes, float64.
        duration: length per note in quarter notes, float64.
        velocity: MIDI velocity per note, int16.
        bar_starts: onset of every bar in quarter notes (from time signatures or measures).
        qpm: tempo at the start, quarter notes per minute.
    """

    name: str
    digest: str
    pitch: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    velocity: np.ndarray
    bar_starts: np.ndarray
    qpm: float = 120.0

    def __post_init__(self):
        order = np.lexsort((self.pitch, self.start))
        self.pitch = np.asarray(self.pitch, np.int16)[order]
        self.start = np.asarray(self.start, np.float64)[order]
        self.duration = np.asarray(self.duration, np.float64)[order]
        self.velocity = np.asarray(self.velocity, np.int16)[order]
        self.bar_starts = np.asarray(self.bar_starts, np.float64)

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def end(self) -> float:
        return float((self.start + self.duration).max()) if len(self) else 0.0

    def transposed(self, semitones: int) -> "Piece":
        """Returns a copy shifted by `semitones`; notes leaving the MIDI range are dropped."""
        pitch = self.pitch.astype(np.int32) + semitones
        keep = (pitch >= 0) & (pitch <= 127)
        return dataclasses.replace(
            self, pitch=pitch[keep], start=self.start[keep], duration=self.duration[keep],
            velocity=self.velocity[keep])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for `np.savez` (the cache format); inverse of `from_arrays`."""
        return {"pitch": self.pitch, "start": self.start, "duration": self.duration,
                "velocity": self.velocity, "bar_starts": self.bar_starts,
                "qpm": np.float64(self.qpm), "name": np.str_(self.name),
                "digest": np.str_(self.digest)}

    @classmethod
    def from_arrays(cls, arrays) -> "Piece":
        return cls(name=str(arrays["name"]), digest=str(arrays["digest"]),
                   pitch=arrays["pitch"], start=arrays["start"], duration=arrays["duration"],
                   velocity=arrays["velocity"], bar_starts=arrays["bar_starts"],
                   qpm=float(arrays["qpm"]))


def from_notes(notes, *, name: str = "generated", qpm: float = 120.0,
               beats_per_bar: float = 4.0) -> Piece:
    """Builds a Piece from (pitch, start, duration[, velocity]) rows, e.g. a decoder's output."""
    rows = np.asarray(notes, np.float64).reshape(len(notes), -1) if len(notes) else np.zeros((0, 4))
    velocity = rows[:, 3] if rows.shape[1] > 3 else np.full(len(rows), 80)
    end = float((rows[:, 1] + rows[:, 2]).max()) if len(rows) else 0.0
    return Piece(name=name, digest="", pitch=rows[:, 0], start=rows[:, 1], duration=rows[:, 2],
                 velocity=velocity, bar_starts=np.arange(0.0, max(end, 1e-9), beats_per_bar),
                 qpm=qpm)


def quantize(piece: Piece, steps_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and durations in grid steps; every note lasts at least one step."""
    onset = np.rint(piece.start * steps_per_quarter).astype(np.int64)
    length = np.maximum(np.rint(piece.duration * steps_per_quarter).astype(np.int64), 1)
    return onset, length
