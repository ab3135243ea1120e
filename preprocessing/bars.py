"""The `bars` representation (MidiNet's input): per bar a melody, the bar before it, a chord.

- melody: [16, 128], at each sixteenth of the bar a one-hot of the highest sounding pitch
  (all zeros where nothing sounds);
- previous: the melody of the bar before (zeros for the first bar);
- chord: [13], the root of the chord sounding at the bar's first beat as a 12-way one-hot plus
  a minor flag, found with music21's chord analysis (all zeros where nothing sounds).
Bars come from the file's time signatures or measures; each bar is split into 16 steps.
"""

from __future__ import annotations

import functools

import numpy as np

from preprocessing.piece import Piece, from_notes
from preprocessing.readers import MIN_BAR

STEPS_PER_BAR = 16
CHORD_DIM = 13
PITCHES = 128


def bar_bounds(piece: Piece) -> np.ndarray:
    """Start of every bar plus the end of the last one: the piece's bar lines up to its end,
    continued at the last bar's length (4 beats when one bar line is known; at least `MIN_BAR`,
    so a piece within the readers' limits gets at most `end / MIN_BAR` more bars)."""
    lines = np.unique(np.asarray(piece.bar_starts, np.float64))
    starts = lines[lines < piece.end]
    if not len(starts):
        starts = np.zeros(1)
    after = lines[(lines > starts[-1]) & (lines >= piece.end)]
    if len(after):
        return np.append(starts, after[0])
    length = max(starts[-1] - starts[-2], MIN_BAR) if len(starts) > 1 else 4.0
    more = max(int(np.ceil((piece.end - starts[-1]) / length)), 1)
    return np.append(starts[:-1], starts[-1] + length * np.arange(more + 1))


def piece_to_bars(piece: Piece) -> dict[str, np.ndarray]:
    """Encodes a piece as bars: {"melody": [B,16,128], "previous": [B,16,128], "chord": [B,13]}."""
    bounds = bar_bounds(piece)
    ends = piece.start + piece.duration
    # sample times: the 16 step starts of every bar
    step = np.diff(bounds)[:, None] / STEPS_PER_BAR
    times = (bounds[:-1, None] + step * np.arange(STEPS_PER_BAR)).reshape(-1)
    eps = 1e-6
    # the steps each note covers: times[lo:hi] fall in [start, end)
    lo = np.searchsorted(times, piece.start - eps)
    hi = np.searchsorted(times, ends - eps)
    counts = np.maximum(hi - lo, 0)
    covered = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    highest = np.full(len(times), -1)
    np.maximum.at(highest, covered + np.repeat(lo, counts), np.repeat(piece.pitch, counts))
    melody = np.zeros((len(times), PITCHES), np.uint8)
    voiced = highest >= 0
    melody[np.flatnonzero(voiced), highest[voiced]] = 1
    melody = melody.reshape(-1, STEPS_PER_BAR, PITCHES)
    previous = np.concatenate([np.zeros_like(melody[:1]), melody[:-1]])
    chords = np.zeros((len(melody), CHORD_DIM), np.float32)
    longest = piece.duration.max(initial=0.0)
    for b, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        # notes sounding in the bar's first beat; piece.start is sorted
        first, last = np.searchsorted(piece.start, [start - longest, min(start + 1.0, end) - eps])
        near = slice(first, last)
        at_beat = ends[near] > start + eps
        chords[b] = chord_vector(tuple(sorted(set((piece.pitch[near][at_beat] % 12).tolist()))))
    return {"melody": melody, "previous": previous, "chord": chords}


@functools.lru_cache(maxsize=4096)
def chord_vector(pitch_classes: tuple[int, ...]) -> np.ndarray:
    """13 values: one-hot root (music21's root finding) and a minor flag."""
    vector = np.zeros(CHORD_DIM, np.float32)
    if not pitch_classes:
        return vector
    from music21 import chord

    found = chord.Chord([60 + pc for pc in pitch_classes])
    vector[found.root().pitchClass] = 1.0
    vector[12] = float(found.quality == "minor")
    return vector


def bars_to_piece(melody: np.ndarray, chords: np.ndarray | None = None,
                  beats_per_bar: float = 4.0, qpm: float = 120.0,
                  name: str = "generated") -> Piece:
    """Decodes melody bars ([B,16,128], argmax per step) and optional chords (block triads).

    A pitch held over consecutive steps is one note, so repeated notes merge.
    """
    melody = np.asarray(melody).reshape(-1, PITCHES)
    step = beats_per_bar / STEPS_PER_BAR
    pitch = np.where(melody.max(axis=1) > 0.5, melody.argmax(axis=1), -1)
    rows = []
    for t, p in enumerate(pitch):
        if p < 0:
            continue
        if t and pitch[t - 1] == p:
            rows[-1][2] += step
        else:
            rows.append([p, t * step, step])
    for b, vector in enumerate(np.asarray(chords) if chords is not None else ()):
        if vector[:12].max() <= 0:
            continue
        root = 48 + int(np.argmax(vector[:12]))
        third = 3 if vector[12] > 0.5 else 4
        rows.extend([p, b * beats_per_bar, beats_per_bar] for p in (root, root + third, root + 7))
    return from_notes(rows, name=name, qpm=qpm, beats_per_bar=beats_per_bar)
