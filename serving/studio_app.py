"""The studio's state and requests (`python -m serving.studio` serves them): the models offered,
uploaded primers, sessions with their undo history, and pieces composed section by section."""

from __future__ import annotations

import collections
import functools
import io
import logging
import math
import re
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from preprocessing import transforms
from preprocessing.piece import InputError, Piece, from_notes
from preprocessing.readers import MIDI_SUFFIXES, SUFFIXES, corpus_paths
from serving import contract
from serving.composer import Composer, Composition
from serving.errors import ComposerError

log = logging.getLogger("studio")
MAX_HISTORY = 24  # undo steps kept per session
MAX_NOTES = 20_000  # a session's piece: continuing past these is refused
MAX_QUARTERS = 2_000.0
WAV_FILES = 4  # rendered WAV files kept on disk, the last ones asked for
NOTATION_SECONDS = 30.0  # reading an uploaded notation file, in its own process
BAR = 4.0  # quarter notes: sections that do not continue a primer start on a 4/4 bar line
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_READ_NOTATION = """
import io, sys
import numpy as np
from preprocessing.piece import InputError
from serving.contract import read_primer
try:
    piece = read_primer(sys.stdin.buffer.read(), sys.argv[1])
except InputError as exc:
    sys.exit(str(exc))
out = io.BytesIO()
np.savez(out, **piece.to_arrays())
sys.stdout.buffer.write(out.getvalue())
"""


class StudioError(Exception):
    """A request the studio answers with an HTTP error and a one-line message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def model_names(models: str | None, config: str | Path | None) -> list[str]:
    """The served models to offer: `models` (comma-separated), else the `name:` entries of a
    TF Serving model config file.

    Raises:
        InputError: neither names them.
    """
    if models:
        names = [n.strip() for n in models.split(",") if n.strip()]
    else:
        try:
            text = Path(config).read_text(errors="replace")
        except (OSError, TypeError) as exc:
            raise InputError(f"--model-config: cannot read {config} ({exc}); name the served "
                             "models with --models a,b") from None
        text = re.sub(r"#[^\n]*", "", text)
        names = re.findall(r'\bname\s*:\s*"([^"\n]+)"', text)
    if not names:
        raise InputError("no models to offer: name them with --models a,b or --model-config")
    return list(dict.fromkeys(names))


def corpus_list() -> dict[str, Path]:
    """The Bach chorales that ship with music21: file name → path."""
    return {p.name: p for p in corpus_paths("bach")}


def _title(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return "BWV " + stem[3:] if stem.startswith("bwv") else stem


def field_number(body: dict, name: str, kind, low, high, default, low_open: bool = False):
    """A number field (JSON number or numeric text) in [low, high] (or (low, high])."""
    value = body.get(name)
    if value is None or value == "":
        return default
    word = "a whole number" if kind is int else "a number"
    try:
        if isinstance(value, bool) or isinstance(value, (list, dict)):
            raise ValueError
        number = kind(value) if kind is float else int(str(value).strip())
    except (ValueError, OverflowError):
        raise InputError(f"{name}: {str(value)[:40]!r} is not {word}") from None
    if not math.isfinite(number):
        raise InputError(f"{name}: {str(value)[:40]!r} is not {word}")
    if number < low or number > high or (low_open and number == low):
        raise InputError(f"{name}: {value} is not in {'(' if low_open else '['}{low:g}, "
                         f"{high if kind is int else format(high, 'g')}]")
    return number


def field_text(body: dict, name: str, most: int = 64) -> str:
    value = body.get(name) or ""
    if not isinstance(value, str) or len(value) > most:
        raise InputError(f"{name}: text of at most {most} characters")
    return value.strip()


def _tail(piece: Piece, meta: dict) -> tuple[Piece, float]:
    """The end of a piece that a model reads as its primer (at most a window of it), and the
    time it starts at (quarter notes, on the model's grid)."""
    spq, window, rep = meta["steps_per_quarter"], int(meta["window"]), meta["representation"]
    grid = np.rint(piece.start * spq) / spq
    if rep == "pianoroll":
        cuts = [max(0, math.ceil(piece.end * spq) - window) / spq]
    elif rep == "notes":  # a note is an event: from the window-th last onset, later if rests
        cuts = np.unique(np.sort(grid)[max(0, len(grid) - window):])  # need more events
    else:
        cuts = [max(0.0, (math.ceil(piece.end / BAR) - window) * BAR)]
    for cut in cuts:
        keep = grid >= cut
        tail = Piece(piece.name, piece.digest, piece.pitch[keep],
                     np.maximum(piece.start[keep] - cut, 0.0), piece.duration[keep],
                     piece.velocity[keep], piece.bar_starts[piece.bar_starts >= cut] - cut,
                     piece.qpm)
        if rep != "notes" or len(contract.primer_steps(tail, meta, 10**9)) <= window:
            break
    return tail, float(cut)


def _joined(piece: Piece, result: Composition, cut: float) -> tuple[Piece, float]:
    """The piece followed by what `result` composed after its primer (which began at `cut`),
    and where that new section starts; a result without a primer goes after the last bar."""
    new = result.piece
    if result.primer_end > 0:
        keep, at = new.start >= result.primer_end - 1e-6, cut + result.primer_end
        offset = cut
    else:
        keep, at = np.ones(len(new), bool), math.ceil(piece.end / BAR - 1e-9) * BAR
        offset = at
    rows = np.concatenate([
        np.stack([piece.pitch, piece.start, piece.duration, piece.velocity], 1),
        np.stack([new.pitch[keep], new.start[keep] + offset, new.duration[keep],
                  new.velocity[keep]], 1)])
    return from_notes(rows, name="studio", qpm=piece.qpm), at


class Session:
    """One browser tab's primer and pieces (the newest last; undo drops it)."""

    def __init__(self, sid: str):
        self.id, self.lock = sid, threading.Lock()
        self.primer: Piece | None = None
        self.primer_name = ""
        self.history: list[dict] = []
        self.revisions = 0
        self.composing = False  # one section at a time per session

    @property
    def head(self) -> dict | None:
        """The newest piece's state, or None."""
        return self.history[-1] if self.history else None

    def push(self, piece: Piece, primer_end: float, sections: list[dict], meta: dict) -> dict:
        self.revisions += 1
        state = {"rev": self.revisions, "piece": piece, "primer_end": primer_end,
                 "sections": sections, "meta": meta}
        self.history = [*self.history, state][-MAX_HISTORY:]
        return state

    def state(self, rev: int) -> dict:
        for state in self.history:
            if state["rev"] == rev:
                return state
        raise StudioError(404, f"no piece {rev} in this session (it keeps the last "
                               f"{MAX_HISTORY})")


class Studio:
    """What the page asks for, over a connection to a server (a `GrpcClient` or `RestClient`).

    Args:
        client: the server.
        models: the served models' names to offer.
        audio_mode: "wav" (FluidSynth renders) or "browser" (the page synthesizes).
        max_upload: bytes an uploaded primer may have.
        max_sessions: sessions kept; the least recently used is forgotten first.
        max_steps: cap on steps per section (the model's own cap applies too).
    """

    def __init__(self, client, models: list[str], audio_mode: str = "wav",
                 max_upload: int = 2**20, max_sessions: int = 32, max_steps: int = 2000):
        self.client, self.models, self.audio = client, models, audio_mode
        self.max_upload, self.max_sessions, self.max_steps = max_upload, max_sessions, max_steps
        self.corpus = corpus_list()
        self.sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self.lock = threading.Lock()
        self.folder = tempfile.TemporaryDirectory(prefix="composer-studio-")
        self.wavs: collections.OrderedDict[tuple, Path] = collections.OrderedDict()
        self.render_lock, self.corpus_lock = threading.Lock(), threading.Lock()

    def close(self) -> None:
        self.folder.cleanup()

    # --- what the page reads --------------------------------------------------------------

    def info(self) -> dict:
        return {"server": self.client.address, "audio": self.audio,
                "max_upload": self.max_upload, "max_steps": self.max_steps,
                "formats": [s[1:] for s in SUFFIXES],
                "corpus": [{"id": k, "title": _title(k)} for k in self.corpus]}

    def model_list(self) -> list[dict]:
        return [self.model(name) for name in self.models]

    def model(self, name: str, version: int | None = None) -> dict:
        """A model's served versions and metadata (newest version, or `version`)."""
        if name not in self.models:
            raise InputError(f"model: {name[:60]!r} is not one of {', '.join(self.models)}")
        try:
            composer = Composer(self.client, name, version)
            versions = sorted(s["version"] for s in composer.status()
                              if s["state"] == "AVAILABLE")
            meta = composer.metadata()
        except ComposerError as exc:
            return {"name": name, "error": str(exc)}
        # what it can do, as its signatures say (not its representation)
        refines_only = contract.has_signature(meta, "refine") and \
            not contract.has_signature(meta, "generate")
        kind = "refine" if refines_only else "compose"
        return {"name": name, "versions": versions, "kind": kind, "metadata": meta,
                "inputs": contract.input_names(meta)}

    # --- sessions -------------------------------------------------------------------------

    def session(self, sid, create: bool = False) -> Session:
        with self.lock:
            if isinstance(sid, str) and SESSION_ID.fullmatch(sid) and sid in self.sessions:
                self.sessions.move_to_end(sid)
                return self.sessions[sid]
            if not create and not sid:
                raise InputError("compose a piece first")
            if not create:
                raise StudioError(404, "this piece is no longer kept (the studio keeps the "
                                       f"{self.max_sessions} most recent); compose a new one")
            new = Session(secrets.token_urlsafe(18))
            self.sessions[new.id] = new
            while len(self.sessions) > self.max_sessions:
                self.sessions.popitem(last=False)
            return new

    def upload(self, sid, name: str, data: bytes) -> dict:
        """Reads an uploaded primer into the session."""
        name = Path(name or "upload").name[:100] or "upload"
        suffix = Path(name).suffix.lower()
        if not data:
            raise InputError(f"{name}: empty file")
        if data[:4] == b"MThd" and suffix not in SUFFIXES:
            suffix = ".mid"
        if suffix not in SUFFIXES:
            raise InputError(f"{name}: unsupported file type {suffix or '(none)'} (expected "
                             f"one of {', '.join(SUFFIXES)})")
        try:
            piece = contract.read_primer(data, suffix) if suffix in MIDI_SUFFIXES \
                else _read_notation(data, suffix[1:])
        except InputError as exc:
            raise InputError(re.sub(r"^primer\.\w+", lambda _: name, str(exc))) from None
        session = self.session(sid, create=True)
        with session.lock:
            session.primer, session.primer_name = piece, name
        return {"session": session.id, "primer": {"name": name, "notes": len(piece),
                                                  "quarters": round(piece.end, 2)}}

    def _corpus_piece(self, name: str) -> Piece:
        if name not in self.corpus:
            raise InputError(f"primer: no chorale {name[:60]!r} in the bundled corpus")
        with self.corpus_lock:  # music21 is not made for threads
            return _read_corpus(self.corpus[name])

    # --- composing ------------------------------------------------------------------------

    def compose(self, body: dict) -> dict:
        """A new piece from a primer, or (`continue`) the session's piece extended by a section
        composed from its end with these settings."""
        name = field_text(body, "model", 200)
        if name not in self.models:
            raise InputError(f"model: {name[:60]!r} is not one of {', '.join(self.models)}")
        version = field_number(body, "version", int, 1, 2**63 - 1, None)
        extend = body.get("continue") is True
        composer = Composer(self.client, name, version)
        meta = composer.metadata()
        if not contract.has_signature(meta, "generate"):  # what it can do, as above
            raise InputError(f"model: {name} refines, it does not compose; choose it under "
                             "'refine with'")
        names = contract.input_names(meta)
        limit = min(self.max_steps, int(meta.get("max_steps") or self.max_steps))
        settings = {
            "steps": field_number(body, "steps", int, 1, limit, 64),
            "temperature": field_number(body, "temperature", float, 0.0, 10.0, 1.0, low_open=True),
            "top_k": field_number(body, "top_k", int, 0, 100_000, 0),
            "threshold": field_number(body, "threshold", float, 0.0, 1.0, 0.0),
            "seed": field_number(body, "seed", int, 0, 2**63 - 1, 0),
            "key": _key(field_text(body, "key")) if "key" in names else "",
            "density": field_number(body, "density", float, 0.0, 1.0, None)
            if "density" in names else None,
            "form": field_text(body, "form") if "form" in names else ""}
        if settings["form"] and not re.fullmatch(r"[A-Za-z]+", settings["form"]):
            raise InputError(f"form: {settings['form']!r}: letters only, one per segment "
                             "(e.g. ABCAB)")
        refiner = field_text(body, "refine", 200)
        if refiner and refiner not in self.models:
            raise InputError(f"refine: {refiner[:60]!r} is not one of {', '.join(self.models)}")
        choice = field_text(body, "primer", 200)
        session = self.session(body.get("session"), create=not extend)
        with session.lock:  # held to read and to write the session, not while composing
            if session.composing:
                raise StudioError(409, "this session is composing a section; wait for it")
            base, uploaded = session.head, session.primer
            session.composing = True
        try:
            return self._compose(session, composer, meta, extend, base, uploaded, choice,
                                 settings, refiner, name)
        finally:
            with session.lock:
                session.composing = False

    def _compose(self, session: Session, composer: Composer, meta: dict, extend: bool,
                 base: dict | None, uploaded: Piece | None, choice: str, settings: dict,
                 refiner: str, name: str) -> dict:
        """`compose` past its checks, with the session unlocked until the new piece is pushed."""
        if extend:
            if base is None:
                raise InputError("continue: compose a piece first")
            current = base["piece"]
            if not len(current):
                raise InputError("continue: the piece has no notes; compose a new one")
            primer, cut = _tail(current, meta)
        else:
            primer = self._primer(uploaded, choice)
        result = composer.generate(primer, **settings)
        if refiner:
            result = composer.refine(result, refiner=Composer(self.client, refiner))
        label = _label(name, settings, refiner)
        if extend:
            piece, at = _joined(current, result, cut)
            if len(piece) > MAX_NOTES or piece.end > MAX_QUARTERS:
                raise InputError(f"continue: the piece would have {len(piece)} notes over "
                                 f"{piece.end:.0f} quarter notes (at most {MAX_NOTES} over "
                                 f"{MAX_QUARTERS:.0f}); download it and start anew")
            *before, last = base["sections"]
            sections = [*before, {**last, "end": min(last["end"], at)},
                        {"start": at, "end": piece.end, "label": label}]
            end = base["primer_end"]
        else:
            piece, end = result.piece, result.primer_end
            sections = ([{"start": 0.0, "end": end, "label": "primer", "primer": True}]
                        if end > 0 else []) + [{"start": end, "end": piece.end, "label": label}]
        with session.lock:
            if extend and session.head is not base:
                raise StudioError(409, "continue: the piece changed while this section was "
                                       "composed (another compose or undo in this session); "
                                       "try again")
            state = session.push(piece, end, sections, meta)
            log.info("studio: %s %s → %d notes", name, "continued" if extend else "composed",
                     len(piece))
            return self._view(session, state)

    def _primer(self, uploaded: Piece | None, choice: str) -> Piece:
        if choice == "upload":
            if uploaded is None:
                raise InputError("primer: upload a MIDI or MusicXML file first")
            return uploaded
        if choice.startswith("corpus:"):
            return self._corpus_piece(choice[len("corpus:"):])
        if choice:
            raise InputError(f"primer: {choice[:60]!r} is not 'upload' or 'corpus:NAME'")
        return self._corpus_piece(next(iter(self.corpus)))

    def undo(self, body: dict) -> dict:
        session = self.session(body.get("session"))
        with session.lock:
            if len(session.history) < 2:
                raise InputError("undo: nothing to undo")
            session.history = session.history[:-1]
            return self._view(session, session.head)

    def current(self, sid) -> dict:
        session = self.session(sid)
        with session.lock:
            if session.head is None:
                return {"session": session.id}
            return self._view(session, session.head)

    def _view(self, session: Session, state: dict) -> dict:
        piece, rev = state["piece"], state["rev"]
        rows = np.stack([piece.pitch, np.round(piece.start, 4), np.round(piece.duration, 4),
                         piece.velocity], 1).tolist() if len(piece) else []
        base = f"/api/piece/{session.id}/{rev}"
        return {"session": session.id, "rev": rev, "notes": rows, "qpm": piece.qpm,
                "end": piece.end, "primer_end": state["primer_end"],
                "sections": state["sections"], "can_undo": len(session.history) > 1,
                "primer": session.primer_name, "midi": base + ".mid",
                "wav": base + ".wav" if self.audio == "wav" else None}

    # --- files ----------------------------------------------------------------------------

    def file(self, sid: str, rev: int, kind: str) -> bytes:
        """A session's piece as MIDI or WAV bytes."""
        session = self.session(sid)
        with session.lock:
            state = session.state(rev)
        result = Composition(state["piece"], state["primer_end"], {}, {}, state["meta"])
        if kind == "mid":
            return result.midi_bytes()
        if self.audio != "wav":
            raise StudioError(404, "audio is played in the browser (no FluidSynth here)")
        key = session.id, rev
        with self.render_lock:  # one FluidSynth at a time; the newest few kept
            if key not in self.wavs:
                path = Path(self.folder.name) / f"{session.id}-{rev}.wav"
                try:
                    result.write_wav(path)
                except (ComposerError, subprocess.SubprocessError) as exc:
                    raise StudioError(503, f"cannot render audio ({exc})") from None
                self.wavs[key] = path
                while len(self.wavs) > WAV_FILES:
                    self.wavs.popitem(last=False)[1].unlink(missing_ok=True)
            self.wavs.move_to_end(key)
            return self.wavs[key].read_bytes()


def _key(text: str) -> str:
    try:
        return transforms.key_name(text) if text else ""
    except InputError as exc:
        raise InputError(str(exc).replace("--key", "key", 1)) from None


def _label(model: str, s: dict, refiner: str) -> str:
    parts = [model, f"T {s['temperature']:g}"]
    parts += [f"key {s['key']}"] if s["key"] else []
    parts += [f"density {s['density']:g}"] if s["density"] is not None else []
    parts += [f"form {s['form']}"] if s["form"] else []
    return " · ".join(parts + ([f"refined by {refiner}"] if refiner else []))


@functools.lru_cache(maxsize=16)
def _read_corpus(path: Path) -> Piece:
    return contract.read_primer(path)


_NOTATION_READERS = threading.BoundedSemaphore(2)  # child processes of music21 at once


def _read_notation(data: bytes, fmt: str) -> Piece:
    """Reads notation bytes in a child process: music21 cannot be stopped in a thread; at most
    two at a time (each imports music21: ~200 MB)."""
    if not _NOTATION_READERS.acquire(timeout=NOTATION_SECONDS):
        raise StudioError(503, "the studio is busy reading other uploads; try again shortly")
    try:
        done = subprocess.run([sys.executable, "-c", _READ_NOTATION, fmt], input=data,
                              capture_output=True, timeout=NOTATION_SECONDS,
                              cwd=Path(__file__).resolve().parents[1])
    except subprocess.TimeoutExpired:
        raise InputError(f"primer.{fmt}: gave up reading after {NOTATION_SECONDS:g} s") \
            from None
    finally:
        _NOTATION_READERS.release()
    if done.returncode:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError((lines or [f"primer.{fmt}: cannot be read"])[-1][:300])
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as arrays:
        return Piece.from_arrays(arrays)
