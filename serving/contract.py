"""The client half of the export contract: a primer and settings → a signature's request
tensors, and its outputs → a piece; NumPy and `preprocessing` only, no TensorFlow."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path

import numpy as np

from preprocessing import bars, notes, performance, pianoroll, transforms
from preprocessing.piece import InputError, Piece
from preprocessing.readers import SUFFIXES, corpus_paths, read_file

METADATA_REQUEST = {"request": np.zeros([1], np.int32)}  # the `metadata` signature's input


def metadata_from_outputs(outputs: dict) -> dict:
    """The `metadata` signature's outputs (tensors or arrays, one row) as plain Python values."""
    out = {}
    for key, value in outputs.items():
        value = np.asarray(value).reshape(-1)[0]
        out[key] = value.decode() if isinstance(value, bytes) else value.item()
    return out


def read_primer(primer=None, primer_format: str | None = None) -> Piece:
    """A primer as a piece: its first piece when it is a file.

    Args:
        primer: a MIDI / MusicXML / ABC / Humdrum path, the bytes of such a file, a `Piece`, or
            None for the first Bach chorale that ships with music21.
        primer_format: the bytes' format ("mid", "xml", "mxl", "abc", "krn"); default: sniffed
            (MIDI starts with MThd).

    Raises:
        InputError: the primer cannot be read; the one-line message says why.
    """
    if isinstance(primer, Piece):
        return primer
    if primer is None:
        return read_file(corpus_paths("bach")[0])[0]
    if isinstance(primer, (str, Path)):
        return read_file(primer)[0]
    if not isinstance(primer, (bytes, bytearray, memoryview)):
        raise InputError(f"primer: a file path, the file's bytes or a Piece, not "
                         f"{type(primer).__name__}")
    data = bytes(primer)
    suffix = "." + (primer_format or _sniff(data)).lower().lstrip(".")
    if suffix not in SUFFIXES:
        raise InputError(f"primer_format: {primer_format!r} is not one of "
                         f"{', '.join(s[1:] for s in SUFFIXES)}")
    # the readers take notation from files only, and check sizes there
    with tempfile.TemporaryDirectory(prefix="composer-primer-") as folder:
        path = Path(folder, "primer" + suffix)
        path.write_bytes(data)
        try:
            return read_file(path)[0]
        except InputError as exc:
            raise InputError(str(exc).replace(str(path), path.name)) from None


def _sniff(data: bytes) -> str:
    """The format of a file's bytes, from how such files start."""
    head = data[:4096].lstrip()
    if data[:4] == b"MThd":
        return "mid"
    if data[:4] == b"PK\x03\x04":
        return "mxl"
    if head.startswith(b"<"):
        return "musicxml"
    if head.startswith((b"**", b"!!")):
        return "krn"
    if re.search(rb"(?m)^X:", head):
        return "abc"
    raise InputError("primer: bytes that are not MIDI (no MThd header), MusicXML, ABC or "
                     "Humdrum; name the format with primer_format=")


def has_signature(meta: dict, name: str) -> bool:
    """Whether the model has signature `name`, as its metadata lists them; models exported
    before metadata listed them are given the benefit of the doubt (the server then says)."""
    listed = meta.get("signatures")
    return listed is None or name in listed.split(",")


def primer_steps(piece: Piece, meta: dict, length: int | None = None):
    """The primer in the model's representation: its first `length` steps (default: window)."""
    length = length or int(meta["window"])
    rep = meta["representation"]
    if rep == "performance":  # notes as rows: what refine models read, not a primer
        raise InputError(f"--model: {meta['model']} does not compose, it refines; pass it as "
                         "--refine")
    if rep == "notes":
        events = notes.piece_to_events(piece, meta["steps_per_quarter"], meta["max_duration"],
                                       meta["max_shift"], meta.get("chords") or "classes")
        return [notes.event_string(e) for e in events[:length]]
    if rep == "pianoroll":
        roll = pianoroll.piece_to_roll(piece, meta["steps_per_quarter"], meta["encoding"])
        if not len(roll):
            raise InputError(f"{piece.name}: no notes inside the piano's range")
        return pianoroll.to_frames(roll[:length])
    return bars.piece_to_bars(piece)["chord"][:length]


# the `generate` inputs of models exported before metadata listed them
_OLD_INPUTS = {"notes": "primer,num_steps,temperature,top_k,seed",
               "pianoroll": "primer,num_steps,temperature,threshold,seed",
               "bars": "chords,num_bars,seed"}


def input_names(meta: dict) -> list[str]:
    """The names of the model's `generate` inputs, from its metadata."""
    return (meta.get("inputs") or _OLD_INPUTS.get(meta["representation"], "")).split(",")


def generate_inputs(primer, meta: dict, steps: int, temperature: float = 1.0, top_k: int = 0,
                    seed: int = 0, threshold: float = 0.0, key: str = "",
                    density: float | None = None, form: str = "") -> dict[str, np.ndarray]:
    """The `generate` inputs for one request (batch of 1): the ones the model's metadata lists.

    Raises:
        InputError: --key or --density for a model that takes no condition, a bad key, a
            density outside 0-1, or --form for a model that takes none.
    """
    names = input_names(meta)
    if density is not None and not 0 <= density <= 1:
        raise InputError(f"--density: {density:g} is not in 0-1 (note events per grid step)")
    for flag, value, name in (("--key", key, "key"), ("--density", density, "density")):
        if value not in ("", None) and name not in names:
            raise InputError(f"{flag}: {meta['model']} is not conditional (train it with "
                             "--hparams condition=true)")
    if form and "form" not in names:
        raise InputError(f"--form: {meta['model']} does not take a form (wgan_gp does)")
    rep = meta["representation"]
    if rep == "notes":
        # "" pads at the start to the model's window: requests of one model then have one
        # shape, which TF Serving's batching needs to merge them
        padded = [""] * max(0, int(meta["window"]) - len(primer)) + list(primer)
        primer = np.asarray([padded], object)
    else:
        primer = np.asarray(primer, np.float32)[None]
    pool = {"primer": primer, "chords": primer,
            "num_steps": np.asarray([steps], np.int32), "num_bars": np.asarray([steps], np.int32),
            "temperature": np.asarray([temperature], np.float32),
            "top_k": np.asarray([top_k], np.int32),
            "threshold": np.asarray([threshold], np.float32),
            "seed": np.asarray([seed], np.int64),
            "key": np.asarray([transforms.key_name(key) if key else ""], object),
            "form": np.asarray([form.strip().upper()], object),
            "density": np.asarray([-1.0 if density is None else density], np.float32)}
    return {name: pool[name] for name in names}


def interpolate_inputs(a, b, meta: dict, points: int, temperature: float = 1.0,
                       threshold: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """The `interpolate` inputs (vae) for one request: frames a and b, blended in `points`
    segments."""
    if not has_signature(meta, "interpolate"):
        raise InputError(f"--interpolate: {meta['model']} has no interpolate signature (it has "
                         f"{meta['signatures'].replace(',', ', ')})")
    return {"a": np.asarray(a, np.float32)[None], "b": np.asarray(b, np.float32)[None],
            "num_points": np.asarray([points], np.int32),
            "temperature": np.asarray([temperature], np.float32),
            "threshold": np.asarray([threshold], np.float32),
            "seed": np.asarray([seed], np.int64)}


def refine_inputs(piece: Piece, meta: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The `refine` inputs for a piece's notes (batch of 1), and its rows, on the refine model's
    grid."""
    if not has_signature(meta, "refine") or meta["representation"] != "performance":
        raise InputError(f"--refine: {meta['model']} is not a refine model (train one with "
                         "python -m trainer.task --model refine)")
    rows = performance.piece_to_rows(piece, meta["steps_per_quarter"], meta["max_duration"])
    return {f: rows[None, :, i] for i, f in enumerate(performance.FIELDS[:3])}, rows


def refined(piece: Piece, rows: np.ndarray, outputs: dict, meta: dict) -> Piece:
    """The piece with the refine model's velocities and durations; onsets stay as they were,
    and so do notes longer than the model's longest duration (it never sees their length)."""
    spq = meta["steps_per_quarter"]
    order = performance.note_order(piece, spq)
    snapped = np.asarray(outputs["duration"])[0] / spq
    longer = rows[:, 2] >= meta["max_duration"]
    duration, velocity = piece.duration.copy(), piece.velocity.copy()
    duration[order] = np.where(longer, piece.duration[order], snapped)
    velocity[order] = np.asarray(outputs["velocity"])[0]
    return dataclasses.replace(piece, duration=duration, velocity=velocity)


def to_piece(primer, outputs: dict, meta: dict, qpm: float = 120.0,
             accompany: bool = True) -> tuple[Piece, float]:
    """The primer followed by the generated steps, and where the primer ends (quarter notes).

    For `bars` models the primer is the chord progression: with `accompany`, its chords sound
    as block triads under the generated melody.
    """
    rep, spq = meta["representation"], meta["steps_per_quarter"]
    if rep == "notes":
        generated = [s.decode() if isinstance(s, bytes) else str(s)
                     for s in np.asarray(outputs["tokens"])[0]]
        events = [notes.parse_event_string(s) for s in [*primer, *generated] if s]
        primer_end = sum(notes.parse_event_string(s)[2] for s in primer if s) / spq
        return notes.events_to_piece(events, spq, qpm), primer_end
    if rep == "pianoroll":
        if "primer" not in input_names(meta):  # composed from noise alone (wgan_gp)
            primer = np.zeros((0, meta["keys"]), np.float32)
        frames = np.concatenate([primer, np.asarray(outputs["frames"])[0]])
        roll = pianoroll.from_frames(frames, meta["encoding"])
        return pianoroll.roll_to_piece(roll, spq, qpm), len(primer) / spq
    melody = np.asarray(outputs["bars"])[0]
    chords = np.resize(np.asarray(primer), (len(melody), bars.CHORD_DIM)) if accompany else None
    return bars.bars_to_piece(melody, chords, qpm=qpm), 0.0


def composed_piece(outputs: dict, meta: dict, row: int = 0) -> Piece:
    """What row `row` of a `generate` call's outputs composed, without its primer (for bars
    models, the melody without the chords)."""
    empty = np.zeros((0, meta["keys"]), np.float32) if meta["representation"] == "pianoroll" \
        else []
    mine = {key: np.asarray(value)[row:row + 1] for key, value in outputs.items()}
    return to_piece(empty, mine, meta, accompany=False)[0]
