"""Key-based transforms: estimate a piece's key, transpose it to C major / A minor, augment."""

from __future__ import annotations

import numpy as np

from preprocessing.piece import InputError, Piece

# Krumhansl-Kessler key profiles, tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
KEY_PROFILES = np.stack([np.stack([np.roll(p, k) for k in range(12)]) for p in (_MAJOR, _MINOR)])
"""[mode (major, minor), tonic, pitch class]."""
TONICS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6,
          "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}
KEY_INDEX = {**TONICS, **{name + "m": t + 12 for name, t in TONICS.items()}}
"""Key names as the `generate` signature takes them ("C" major, "Cm" minor) → tonic + 12 * minor."""
_MODES = {"": False, "major": False, "maj": False, "minor": True, "min": True, "m": True}


def key_name(text: str) -> str:
    """A user's key ("C", "c#", "A minor", "Bb major", "f#m") → the signature's spelling ("Am").

    Raises:
        InputError: not a key.
    """
    words = text.strip().split()
    mode = words[1].lower() if len(words) == 2 else ""
    tonic = words[0] if words and len(words) <= 2 else ""
    if len(tonic) > 1 and tonic.endswith("m") and not mode:
        tonic, mode = tonic[:-1], "m"
    tonic = tonic[:1].upper() + tonic[1:]
    if tonic not in TONICS or mode not in _MODES:
        raise InputError(f"--key: {text!r} is not a key; e.g. C, F#, Bb, Am, 'C# minor'")
    return tonic + ("m" if _MODES[mode] else "")


def pitch_class_durations(piece: Piece) -> np.ndarray:
    """Share of sounding time spent on each pitch class (what key finding weighs)."""
    hist = np.bincount(piece.pitch % 12, weights=piece.duration, minlength=12)
    return hist / max(hist.sum(), 1e-9)


def estimate_key(piece: Piece) -> tuple[int, str]:
    """Krumhansl-Schmuckler key finding: (tonic pitch class, "major" | "minor")."""
    hist = pitch_class_durations(piece)
    scores = np.array([[np.corrcoef(hist, profile)[0, 1] if hist.std() > 0 else 0.0
                        for profile in mode] for mode in KEY_PROFILES])
    mode, tonic = np.unravel_index(np.argmax(scores), scores.shape)
    return int(tonic), ("major", "minor")[mode]


def shift_to_c(piece: Piece) -> int:
    """Semitones (-6..5) that move the piece's key to C major or A minor."""
    tonic, mode = estimate_key(piece)
    target = 0 if mode == "major" else 9
    return (target - tonic + 6) % 12 - 6


def variants(piece: Piece, to_c: bool = False, augment: int = 0) -> list[Piece]:
    """The piece (in C major / A minor if `to_c`) and, for augment=N, its ±1..N transpositions."""
    base = piece.transposed(shift_to_c(piece)) if to_c else piece
    return [base] + [base.transposed(s) for s in range(-augment, augment + 1) if s]
