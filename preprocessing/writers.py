"""Pieces back to files: MIDI through symusic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocessing.piece import Piece


def midi_bytes(piece: Piece, program: int = 0) -> bytes:
    """The piece as a one-track MIDI file's bytes (General MIDI `program`, 0 = piano)."""
    import symusic

    score = symusic.Score(480, ttype="quarter")
    score.tempos.append(symusic.Tempo(0.0, qpm=float(piece.qpm), ttype="quarter"))
    score.time_signatures.append(symusic.TimeSignature(0.0, 4, 4, ttype="quarter"))
    track = symusic.Track(name="piano", program=program, is_drum=False, ttype="quarter")
    track.notes = symusic.Note.from_numpy(
        piece.start.astype(np.float32), piece.duration.astype(np.float32),
        piece.pitch.astype(np.int8), np.clip(piece.velocity, 1, 127).astype(np.int8),
        ttype="quarter")
    score.tracks.append(track)
    return score.dumps_midi()


def write_midi(piece: Piece, path: str | Path, program: int = 0) -> Path:
    """Writes a one-track MIDI file (General MIDI `program`, 0 = piano) and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(midi_bytes(piece, program))
    return path
