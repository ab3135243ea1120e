"""Readers: MIDI through symusic (fast), notation through music21; inputs expanded to files."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import glob
import hashlib
import io
import os
import re
import signal
import threading
import zipfile
from pathlib import Path

import numpy as np

from preprocessing.piece import InputError, Piece

MIDI_SUFFIXES = (".mid", ".midi")
NOTATION_SUFFIXES = (".xml", ".mxl", ".musicxml", ".abc", ".krn")
SUFFIXES = MIDI_SUFFIXES + NOTATION_SUFFIXES
CORPUS_PREFIX = "corpus:"
# the shortest bar in quarter notes (a 1/32 bar): caps the bar lines at 8 per quarter note
MIN_BAR = 0.125


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """What to take from a file, and the limits past which it is skipped.

    Attributes:
        tracks: "non-drum" (default), "all", or comma-separated track / part indices ("0,2").
        max_bytes: larger files are skipped unread.
        max_notes: pieces with more notes are skipped.
        max_quarters: pieces longer than this many quarter notes are skipped.
        max_seconds: notation files that music21 takes longer to parse are skipped (enforced
            with SIGALRM, so only in the main thread on Unix, and when no other timer is set).
    """

    tracks: str = "non-drum"
    max_bytes: int = 32 * 2**20
    max_notes: int = 100_000
    max_quarters: float = 20_000.0
    max_seconds: float = 60.0

    def __post_init__(self):
        if self.tracks not in ("non-drum", "all"):
            try:
                self.track_indices()
            except ValueError:
                raise InputError(f"--tracks: expected 'non-drum', 'all' or indices like '0,2', "
                                 f"got {self.tracks!r}") from None

    def track_indices(self) -> set[int] | None:
        if self.tracks in ("non-drum", "all"):
            return None
        return {int(i) for i in self.tracks.split(",")}


def expand_inputs(inputs: list[str], limit: int | None = None) -> list[Path]:
    """Expands files, directories (recursively), globs and `corpus:NAME` into a file list.

    Inputs keep their order; the files each one names are sorted; duplicates are dropped.

    Raises:
        InputError: an input matches nothing.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        if item.startswith(CORPUS_PREFIX):
            paths = corpus_paths(item[len(CORPUS_PREFIX):])
        elif os.path.isdir(item):
            paths = sorted(p for p in Path(item).rglob("*")
                           if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif os.path.isfile(item):
            paths = [Path(item)]
        elif glob.has_magic(item):
            paths = _glob(item)
            if not paths:
                raise InputError(f"{item}: the pattern matches no file")
        else:
            raise InputError(f"{item}: no such file or directory")
        found.update(dict.fromkeys(paths))
    files = list(found)
    return files[:limit] if limit else files


def _glob(pattern: str) -> list[Path]:
    """The files a pattern matches; `**` does not follow links to folders (glob.glob does,
    and a link loop then never ends)."""
    path = Path(pattern)
    root = Path(path.anchor) if path.is_absolute() else Path()
    relative = str(path.relative_to(path.anchor)) if path.is_absolute() else pattern
    return sorted(p for p in root.glob(relative) if p.is_file())


def corpus_paths(name: str) -> list[Path]:
    """Files of a corpus that ships with music21 (`bach`, `palestrina`, `ryansMammoth`, ...)."""
    from music21 import corpus

    paths = corpus.getComposer(name) or [
        p for p in corpus.getCorePaths() if name in Path(p).parent.parts]
    paths = sorted(Path(p) for p in paths if Path(p).suffix.lower() in SUFFIXES)
    if not paths:
        raise InputError(f"corpus:{name}: no such music21 corpus (try corpus:bach, "
                         "corpus:palestrina, corpus:beethoven, corpus:ryansMammoth)")
    return paths


def read_file(path: str | Path, options: ReadOptions = ReadOptions(),
              data: bytes | None = None) -> list[Piece]:
    """Reads one file into pieces (several for an ABC file holding many tunes).

    Args:
        path: the file; its suffix picks the parser.
        options: track selection and limits.
        data: the file's bytes, if the caller has read them already.

    Raises:
        InputError: the file cannot be used; the one-line message names it and says why.
    """
    path = Path(path)
    suffix = check_suffix(path)
    data = read_bytes(path, options) if data is None else data
    digest = content_digest(data)
    if suffix in MIDI_SUFFIXES:
        pieces = [_read_midi(path, data, digest, options)]
    else:
        _prescan_notation(path, suffix, data, options)
        pieces = _read_notation(path, digest, options)
    for piece in pieces:
        _check(piece, options)
    return pieces


def check_suffix(path: Path) -> str:
    """The file's lower-case suffix, if it is one the readers take."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: unsupported file type {suffix or '(none)'} "
                         f"(expected one of {', '.join(SUFFIXES)})")
    return suffix


def read_bytes(path: Path, options: ReadOptions = ReadOptions()) -> bytes:
    """The file's bytes, refusing empty and oversized files with a one-line reason."""
    try:
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"{path}: empty file")
        if size > options.max_bytes:
            raise InputError(f"{path}: file too large ({size} bytes > {options.max_bytes})")
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _check(piece: Piece, options: ReadOptions) -> None:
    if len(piece) == 0:
        raise InputError(f"{piece.name}: no notes in the selected tracks")
    _check_size(piece.name, len(piece), piece.end, options)
    first = float(piece.start.min())
    if not first >= 0:  # a negative <forward> or offset in notation; NaN fails too
        raise InputError(f"{piece.name}: a note starts before the piece (at quarter {first:.0f})")
    limit = options.max_quarters / MIN_BAR + 1
    if len(piece.bar_starts) > limit:
        raise InputError(f"{piece.name}: too many bar lines ({len(piece.bar_starts)} > "
                         f"{limit:.0f})")


def _check_size(name: str, notes: int, end: float, options: ReadOptions) -> None:
    if notes > options.max_notes:
        raise InputError(f"{name}: too long ({notes} notes > {options.max_notes})")
    if not np.isfinite(end) or end > options.max_quarters:
        raise InputError(f"{name}: too long ({end:.0f} quarter notes > "
                         f"{options.max_quarters:.0f})")


def _tempo(qpm) -> float:
    """A usable tempo: 120 where the file gives none, zero or an infinite one."""
    qpm = float(qpm or 0.0)
    return qpm if 0 < qpm < np.inf else 120.0


def _selected(index: int, is_drum: bool, options: ReadOptions) -> bool:
    wanted = options.track_indices()
    if wanted is not None:
        return index in wanted
    return options.tracks == "all" or not is_drum


def _read_midi(path: Path, data: bytes, digest: str, options: ReadOptions) -> Piece:
    import symusic

    try:
        score = symusic.Score.from_midi(data, ttype="quarter")
    except Exception as exc:  # symusic raises RuntimeError with the parser's reason
        reason = str(exc).split("\n")[0].replace("MiniMidi: ", "").replace(": iostream error", "")
        raise InputError(f"{path}: not a readable MIDI file ({reason})") from None
    if score.ticks_per_quarter <= 0:  # symusic divides by it: NaN times
        raise InputError(f"{path}: not a readable MIDI file (0 ticks per quarter note)")
    tracks = [t for i, t in enumerate(score.tracks) if _selected(i, t.is_drum, options)]
    if not tracks and any(t.is_drum and len(t.notes) for t in score.tracks):
        raise InputError(f"{path}: drum tracks only")
    columns = [t.notes.numpy() for t in tracks if len(t.notes)]
    if not columns:
        raise InputError(f"{path}: no notes in the selected tracks")
    notes = {k: np.concatenate([c[k] for c in columns]) for k in ("pitch", "time", "duration",
                                                                  "velocity")}
    end = float((notes["time"].astype(np.float64) + notes["duration"]).max())
    # before the bar lines, whose number follows the length the file claims
    _check_size(str(path), len(notes["pitch"]), end, options)
    return Piece(name=str(path), digest=digest, pitch=notes["pitch"], start=notes["time"],
                 duration=notes["duration"], velocity=notes["velocity"],
                 bar_starts=downbeats(score.time_signatures, end, str(path)),
                 qpm=_tempo(score.tempos[0].qpm if len(score.tempos) else None))


def downbeats(time_signatures, end: float, name: str = "time signatures") -> np.ndarray:
    """Starts of the bars before `end` from time-signature events; 4/4 before the first.

    Only events before `end` count, and of events at the same time the last one. At most
    `end / MIN_BAR + 1` starts are made.

    Args:
        time_signatures: symusic's time signatures, times in quarter notes.
        end: where the music ends, in quarter notes (finite).
        name: the file, for error messages.

    Raises:
        InputError: a time signature's bar is shorter than `MIN_BAR` (0/4, 1/128, or a
            denominator past 128, which symusic wraps to 0), or the events are so dense that
            there would be more than one bar line per `MIN_BAR`.
    """
    table = time_signatures.numpy()
    marks = np.stack([table[k].astype(np.float64) for k in ("time", "numerator", "denominator")],
                     axis=1)
    marks = marks[np.argsort(marks[:, 0], kind="stable")]
    marks = marks[marks[:, 0] < end]
    marks = marks[np.diff(marks[:, 0], append=np.inf) > 0]  # the last of each time
    if not len(marks) or marks[0, 0] > 0:
        marks = np.insert(marks, 0, (0.0, 4, 4), axis=0)
    time, numerator, denominator = marks.T
    length = np.divide(numerator * 4, denominator, out=np.zeros(len(marks)),
                       where=denominator > 0)
    short = np.flatnonzero(length < MIN_BAR)
    if len(short):
        t, n, d = marks[short[0]]
        raise InputError(f"{name}: unusable time signature {n:.0f}/{d:.0f} at quarter {t:g} "
                         f"(bars shorter than 1/{1 / MIN_BAR:.0f} of a quarter note)")
    counts = np.ceil((np.append(time[1:], end) - time) / length).astype(np.int64)
    total, limit = int(counts.sum()), int(end / MIN_BAR) + 1
    if total > limit:
        raise InputError(f"{name}: too many bar lines ({total} in {end:.0f} quarter notes; "
                         f"at most {limit})")
    # bar k of a segment starts k bar lengths after the segment's time signature
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(time, counts) + k * np.repeat(length, counts)


class _OverTime(BaseException):
    """Raised by the timer; not an Exception, so music21's `except Exception` lets it through."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raises _OverTime in the block once `seconds` have passed, where SIGALRM can be used."""
    if (not hasattr(signal, "setitimer") or signal.getitimer(signal.ITIMER_REAL)[0]
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def expire(signum, frame):
        raise _OverTime

    # no garbage collection in the block: a tick landing in a collected object's __del__ (a
    # TensorFlow function's, when a process also trains) would be lost as "unraisable"
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()
    previous = signal.signal(signal.SIGALRM, expire)
    # then again every 50 ms: music21 swallows some exceptions in bare `except:` blocks
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        while True:  # a tick may land here too: disarm until it holds
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                break
            except _OverTime:
                continue


# music21 builds a time signature's beat structure in time and memory that grow with the square
# of its numerator ("M:1000000/1" took 3 GB in 100 s): refuse meters no music uses
MAX_NUMERATOR = 64
_METERS = {".abc": rb"(?m)(?:^|\[)M:\s*(\d+)\s*/", ".krn": rb"\*M(\d+)/",
           ".xml": rb"<beats>\s*(\d+)", ".musicxml": rb"<beats>\s*(\d+)"}


def _prescan_notation(path: Path, suffix: str, data: bytes, options: ReadOptions) -> None:
    """Refuses, before music21 reads it, notation whose unpacked size (.mxl) is over the file
    limit or whose meter is absurd: both cost music21 memory and time it cannot be stopped in."""
    texts = [data]
    if suffix == ".mxl":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                size = sum(info.file_size for info in members)
                if size <= options.max_bytes:
                    texts = [archive.read(info) for info in members
                             if info.filename.lower().endswith((".xml", ".musicxml"))]
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError):
            return  # music21 says what is wrong with it
        if size > options.max_bytes:
            raise InputError(f"{path}: unpacks to {size} bytes (> {options.max_bytes})")
    pattern = _METERS.get(suffix, _METERS[".xml"])
    for text in texts:
        for match in re.finditer(pattern, text):
            if int(match.group(1)) > MAX_NUMERATOR:
                raise InputError(f"{path}: unusable time signature with {int(match.group(1))} "
                                 f"beats (at most {MAX_NUMERATOR})")


def _read_notation(path: Path, digest: str, options: ReadOptions) -> list[Piece]:
    # music21's time signatures cost the square of their numerator: "M:800/8" takes 35 s
    try:
        with _time_limit(options.max_seconds):
            return _parse_notation(path, digest, options)
    except _OverTime:
        raise InputError(f"{path}: cannot parse {path.suffix.lower()[1:]} (gave up after "
                         f"{options.max_seconds:g} s)") from None


def _parse_notation(path: Path, digest: str, options: ReadOptions) -> list[Piece]:
    from music21 import converter, stream

    try:
        parsed = converter.parse(path, forceSource=True)
    except Exception as exc:  # music21 raises many types for unreadable input
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{path}: cannot parse {path.suffix.lower()[1:]} ({reason})") from None
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    if len(scores) == 1:
        return [_score_to_piece(scores[0], str(path), digest, options)]
    return [_score_to_piece(s, f"{path}#{i}", f"{digest}-{i}", options)
            for i, s in enumerate(scores)]


def _score_to_piece(score, name: str, digest: str, options: ReadOptions) -> Piece:
    from music21 import instrument

    parts = list(score.parts) or [score]
    rows = []
    for index, part in enumerate(parts):
        is_drum = any(isinstance(i, instrument.UnpitchedPercussion)
                      for i in part.getInstruments(recurse=True))
        if not _selected(index, is_drum, options):
            continue
        for element in part.stripTies().flatten().notes:
            length = float(element.quarterLength)
            if length <= 0:  # grace notes
                continue
            velocity = element.volume.velocity or 80
            for p in getattr(element, "pitches", ()):
                rows.append((p.midi, float(element.offset), length, velocity))
    if not rows and any(isinstance(i, instrument.UnpitchedPercussion)
                        for i in score.getInstruments(recurse=True)):
        raise InputError(f"{name}: drum parts only")
    rows = np.asarray(rows, np.float64).reshape(-1, 4)
    marks = list(score.recurse().getElementsByClass("MetronomeMark"))
    try:
        qpm = _tempo(marks[0].getQuarterBPM() if marks else None)
    except ZeroDivisionError:  # music21 divides by the mark's number ("Q:1/4=0" in ABC)
        qpm = 120.0
    bar_starts = [float(m.offset) for m in parts[0].getElementsByClass("Measure")]
    return Piece(name=name, digest=digest, pitch=rows[:, 0], start=rows[:, 1],
                 duration=rows[:, 2], velocity=rows[:, 3], bar_starts=bar_starts or [0.0],
                 qpm=qpm)
