"""Hostile and fuzzed input for the readers: a bounded piece or a one-line InputError only."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
import traceback
import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from preprocessing import bars, readers
from preprocessing.piece import InputError
from preprocessing.readers import MIN_BAR, ReadOptions
from tests.conftest import BASS, MELODY, two_voices, write_midi_file

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")

REPO = Path(__file__).resolve().parents[1]
LIMITS = ReadOptions()
CASE_BUDGET = 512 * 2**20  # bytes of address space one case may add to the worker's
CASE_SECONDS = 5.0
FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- Standard MIDI Files by hand ----------------------------------------------------------------

def vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(0x80 | n & 0x7F)
    return bytes(reversed(out))


def track(*events: tuple[int, bytes]) -> bytes:
    """An MTrk chunk of (delta ticks, event bytes), closed by end-of-track."""
    body = b"".join(vlq(delta) + event for delta, event in events) + b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(*tracks: bytes, division: int = 480, fmt: int = 1, count: int | None = None) -> bytes:
    count = len(tracks) if count is None else count
    return b"MThd" + struct.pack(">IHHH", 6, fmt, count, division) + b"".join(tracks)


def on(pitch: int = 60) -> bytes:
    return bytes([0x90, pitch, 64])


def off(pitch: int = 60) -> bytes:
    return bytes([0x80, pitch, 0])


def meter(numerator: int, exponent: int) -> bytes:
    """A time signature numerator / 2**exponent."""
    return bytes([0xFF, 0x58, 4, numerator, exponent, 24, 8])


def tempo(microseconds: int) -> bytes:
    return b"\xff\x51\x03" + microseconds.to_bytes(3, "big")


MAX_DELTA = 2**28 - 1

# name → (bytes, the reason after "PATH: ", or None where the file is usable)
HOSTILE = {
    # 37 bytes: 1 tick per quarter, a note of 2**28 quarters
    "long note": (smf(track((0, on()), (MAX_DELTA, off())), division=1),
                  r"too long \(268435456 quarter notes > 20000\)"),
    # 45 bytes: a 1/128 bar, a note of 2**24 quarters (2**29 bars; died of MemoryError)
    "1/128 and a long note": (smf(track((0, meter(1, 7)), (0, on()), (2**24, off())), division=1),
                              r"too long \(16777216 quarter notes > 20000\)"),
    "1/128 bar": (smf(track((0, meter(1, 7)), (0, on()), (10_000, off())), division=1),
                  r"unusable time signature 1/128 at quarter 0 \(bars shorter than 1/8 of a "
                  r"quarter note\)"),
    "1/2**255 bar": (smf(track((0, meter(1, 255)), (0, on()), (4, off())), division=1),
                     r"unusable time signature 1/0 at quarter 0 \(.*\)"),
    "0/4 bar": (smf(track((0, on()), (2, meter(0, 2)), (2, off())), division=1),
                r"unusable time signature 0/4 at quarter 2 \(.*\)"),
    "255/1 bars": (smf(track((0, meter(255, 0)), (0, on()), (4000, off())), division=1), None),
    "a time signature every tick": (
        smf(track((0, on()), *[(1, meter(4, 2))] * 50_000, (0, off())), division=96),
        r"too many bar lines \(50000 in 521 quarter notes; at most 4167\)"),
    "0 ticks per quarter": (smf(track((0, on()), (4, off())), division=0),
                            r"not a readable MIDI file \(0 ticks per quarter note\)"),
    "SMPTE division": (smf(track((0, on()), (4, off())), division=0xE728),
                       r"not a readable MIDI file \(Division type is not ticks per quarter!\)"),
    "0x7FFF ticks per quarter": (smf(track((0, on()), (MAX_DELTA, off())), division=0x7FFF),
                                 None),
    "tempo 0": (smf(track((0, tempo(0)), (0, on()), (4, off())), division=1), None),
    "note on without off": (smf(track((0, on()), (MAX_DELTA, on(62))), division=1),
                            r"no notes in the selected tracks"),
    "65535 tracks claimed": (smf(*[track((0, on()), (1, off()))] * 300, count=0xFFFF), None),
}


# --- a worker process that reads cases under a memory and a time limit -------------------------

def _address_space() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024


def _summary(piece) -> dict:
    arrays = (piece.start, piece.duration, piece.bar_starts)
    return {"notes": len(piece), "end": piece.end, "bars": len(piece.bar_starts),
            "first": float(piece.start.min()),
            "finite": bool(all(np.isfinite(a).all() for a in arrays)
                           and np.isfinite(piece.qpm) and piece.qpm > 0),
            "bounds": len(bars.bar_bounds(piece))}


def _serve(conn, budget: int, folder: Path) -> None:
    """Reads (suffix, bytes, options) cases until the pipe closes, each written to a file in
    `folder`; answers (status, path, value)."""
    import music21.converter  # noqa: F401  (loaded before the limit, as in a long run)

    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + budget,) * 2)
    while True:
        try:
            suffix, data, options = conn.recv()
        except EOFError:
            return
        path = folder / f"case{suffix}"
        path.write_bytes(data)
        try:
            pieces = readers.read_file(path, options, data=data)
            conn.send(("ok", str(path), [_summary(p) for p in pieces]))
        except InputError as exc:
            conn.send(("skipped", str(path), str(exc)))
        except BaseException as exc:  # noqa: BLE001  (what the test is after)
            conn.send(("crashed", str(path), f"{type(exc).__name__}: {str(exc)[:300]}\n"
                                             f"{traceback.format_exc()[-2000:]}"))


class Worker:
    """A spawned process importing the readers but not TensorFlow; restarted if it dies or runs
    over time. It writes each case to a file in `folder`."""

    def __init__(self, folder: Path):
        self.folder, self.process, self.conn = folder, None, None

    def read(self, suffix: str, data: bytes, options: ReadOptions = LIMITS) -> tuple:
        wait = CASE_SECONDS
        if self.process is None:
            wait += 60  # the imports
            context = multiprocessing.get_context("spawn")
            self.conn, child = context.Pipe()
            self.process = context.Process(target=_serve, args=(child, CASE_BUDGET, self.folder),
                                           daemon=True)
            self.process.start()
            child.close()
        self.conn.send((suffix, data, options))
        if not self.conn.poll(wait):
            self.stop()
            raise AssertionError(f"over {CASE_SECONDS} s on {data[:64]!r}")
        try:
            result = self.conn.recv()
        except EOFError:
            raise AssertionError(f"the reader died (exit code {self.stop()}) on "
                                 f"{data[:64]!r}") from None
        if result[0] == "crashed":
            raise AssertionError(f"crash on {data[:64]!r}: {result[2]}")
        return result

    def stop(self) -> int | None:
        """Ends the process; returns its exit code."""
        if self.process is None:
            return None
        self.conn.close()
        self.process.kill()
        self.process.join()
        code, self.process = self.process.exitcode, None
        return code


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("fuzz"))
    yield w
    w.stop()


def check(result: tuple, options: ReadOptions = LIMITS) -> str | list:
    """Asserts the readers' promise about one case; returns the skip reason or the summaries."""
    status, path, value = result
    if status == "skipped":
        assert value.startswith(f"{path}: ") and "\n" not in value, value
        return value[len(path) + 2:]
    for piece in value:
        assert 0 < piece["notes"] <= options.max_notes and piece["finite"], piece
        assert 0 <= piece["first"] and 0 <= piece["end"] <= options.max_quarters, piece
        assert piece["bars"] <= options.max_quarters / MIN_BAR + 1, piece
        assert piece["bounds"] <= piece["bars"] + piece["end"] / MIN_BAR + 2, piece
    return value


# --- the hostile files --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_midi_is_read_within_limits(worker, name):
    data, reason = HOSTILE[name]

    outcome = check(worker.read(".mid", data))

    if reason is None:
        assert isinstance(outcome, list) and len(outcome) == 1, outcome
    else:
        assert isinstance(outcome, str) and re.fullmatch(reason, outcome), outcome


def test_limits_are_checked_before_the_bars_are_made(worker):
    data, _ = HOSTILE["1/128 bar"]
    options = ReadOptions(max_quarters=100)

    assert check(worker.read(".mid", data, options), options) == (
        "too long (10000 quarter notes > 100)")


def _limit_memory(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_cli_skips_a_hostile_file_and_keeps_the_rest(tmp_path, workers):
    # 16 files take the worker pool when there are two workers; the old code died of a
    # MemoryError under the 3 GiB limit (and would fill the machine without it)
    folder, out = tmp_path / "in", tmp_path / "out"
    good = [write_midi_file(folder / f"good{k:02d}.mid", two_voices(k)) for k in range(15)]
    hostile = folder / "hostile.mid"
    hostile.write_bytes(HOSTILE["1/128 and a long note"][0])

    result = subprocess.run(
        [sys.executable, "-m", "preprocessing", "--input", str(folder), "--out", str(out),
         "--cache-dir", "", "--workers", str(workers)], cwd=REPO, capture_output=True, text=True,
        timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_limit_memory(3 << 30))

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("15/16 files ok, 1 skipped;"), result.stdout
    rows = json.loads((out / "report.json").read_text())["files"]
    assert [r["file"] for r in rows if r["status"] == "ok"] == [str(p) for p in good]
    assert [r["reason"] for r in rows if r["status"] == "skipped"] == [
        f"{hostile}: too long (16777216 quarter notes > 20000)"]


# --- fuzzing ------------------------------------------------------------------------------------

BYTE = st.integers(0, 255)
SMALL = st.one_of(st.integers(0, 9), BYTE)
DATA = st.integers(0, 127)
EVENT = st.one_of(
    # a note: on, then off after a delta (none when the pitches differ)
    st.builds(lambda c, p, d, q: bytes([0x90 | c, p, 64]) + vlq(d) + bytes([0x80 | c, q, 0]),
              st.integers(0, 1), st.integers(60, 61), st.integers(0, MAX_DELTA),
              st.integers(60, 61)),
    st.builds(lambda s, a, b: bytes([s, a, b]), st.integers(0x80, 0xBF), DATA, DATA),
    st.builds(meter, SMALL, SMALL),
    st.builds(tempo, st.one_of(st.just(0), st.integers(0, 2**24 - 1))),
    st.builds(lambda kind, body: bytes([0xFF, kind]) + vlq(len(body)) + body, BYTE,
              st.binary(max_size=8)),
)
DELTA = st.one_of(st.integers(0, 8), st.integers(0, MAX_DELTA))
DIVISION = st.one_of(st.sampled_from([1, 96, 0x7FFF]), st.sampled_from([0, 0x8000, 0xE728]),
                     st.integers(0, 0xFFFF))


@st.composite
def midi_files(draw) -> bytes:
    """Well-formed chunks around random header fields, delta times and events (and sometimes
    a few bytes of anything among them)."""
    tracks = draw(st.lists(st.lists(st.tuples(DELTA, EVENT), max_size=12), max_size=6))
    if tracks and draw(st.integers(0, 3)) == 0:
        events = tracks[draw(st.integers(0, len(tracks) - 1))]
        events.insert(draw(st.integers(0, len(events))),
                      (draw(DELTA), draw(st.binary(min_size=1, max_size=4))))
    fmt = draw(st.one_of(st.just(1), st.sampled_from([0, 2, 0xFFFF])))
    count = draw(st.one_of(st.just(len(tracks)), st.integers(0, 0xFFFF)))
    return smf(*(track(*e) for e in tracks), division=draw(DIVISION), fmt=fmt, count=count)


@cache
def real_midi() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = write_midi_file(Path(folder) / "real.mid", [MELODY, BASS], ticks_per_beat=96,
                               tempos=[(0, 90), (4, 140)], time_signatures=[(0, 4, 4), (6, 3, 4)])
        return path.read_bytes()


@st.composite
def mutated(draw, original: bytes, alphabet=BYTE) -> bytes:
    """`original` with a few bits flipped, bytes replaced, a chunk spliced in, maybe cut short;
    its first 4 bytes (the magic) are kept."""
    data = bytearray(original)
    where = st.integers(4, len(data) - 1)
    for _ in range(draw(st.integers(0, 6))):
        data[draw(where)] ^= 1 << draw(st.integers(0, 7))
    for _ in range(draw(st.integers(0, 2))):
        data[draw(where)] = draw(alphabet)
    at = draw(where)
    data[at:at] = draw(st.lists(alphabet, max_size=6))
    cut = draw(st.one_of(st.just(len(data)), st.just(len(data)), st.integers(4, len(data))))
    return bytes(data[:cut])


@settings(max_examples=200, **FUZZ)
@given(data=st.one_of(st.binary(min_size=1, max_size=400),
                      st.binary(max_size=400).map(lambda b: b"MThd" + b)))
def test_fuzz_random_bytes(worker, data):
    check(worker.read(".mid", data))


@settings(max_examples=400, **FUZZ)
@given(data=midi_files())
def test_fuzz_structured_midi(worker, data):
    check(worker.read(".mid", data))


@settings(max_examples=300, **FUZZ)
@given(data=st.deferred(lambda: mutated(real_midi())))
def test_fuzz_mutated_real_midi(worker, data):
    check(worker.read(".mid", data))


MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>M</part-name></score-part>
</part-list><part id="P1"><measure number="1"><attributes><divisions>2</divisions><time><beats>3
</beats><beat-type>4</beat-type></time></attributes><note><pitch><step>C</step><octave>5</octave>
</pitch><duration>4</duration></note><note><pitch><step>E</step><octave>5</octave></pitch>
<duration>2</duration></note></measure><measure number="2"><note><pitch><step>G</step>
<octave>5</octave></pitch><duration>6</duration></note></measure></part></score-partwise>
"""
ABC = "X:1\nT:T\nM:3/4\nL:1/8\nQ:1/4=90\nK:G\nG2 A2 B2 | d4 z2 | [GBd]6 |]\n"
TEXT = st.sampled_from(b"<>/=:|[]()0123456789-_^ ABCDEFGabcdefgz,'\n")


# music21 spends minutes on some tiny files; the readers give up after max_seconds
NOTATION = ReadOptions(max_seconds=2)


@settings(max_examples=20, **FUZZ)
@given(data=mutated(MUSICXML.encode(), TEXT))
@example(data=MUSICXML.replace("<beats>3", "<beats>900").encode())
def test_fuzz_garbled_musicxml(worker, data):
    check(worker.read(".musicxml", data, NOTATION), NOTATION)


@settings(max_examples=20, **FUZZ)
@given(data=mutated(ABC.encode(), TEXT))
@example(data=ABC.replace("L:1/8", "L:1001/8").encode())  # 7 minutes without the limit
@example(data=ABC.replace("=90", "=0").encode())  # was a ZeroDivisionError
def test_fuzz_garbled_abc(worker, data):
    check(worker.read(".abc", data, NOTATION), NOTATION)


def _mxl(score: str) -> bytes:
    """A compressed MusicXML archive holding `score`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/container.xml", '<?xml version="1.0"?><container><rootfiles>'
                         '<rootfile full-path="score.xml"/></rootfiles></container>')
        archive.writestr("score.xml", score)
    return buffer.getvalue()


# each found by a probe (issue 11): small files that cost music21 or the encoder gigabytes
HOSTILE_NOTATION = {
    "a negative forward": (".musicxml", MUSICXML.replace(
        "<note><pitch><step>E", "<forward><duration>-2000000000</duration></forward>"
        "<note><pitch><step>E"), r"a note starts before the piece \(at quarter -\d+\)"),
    "M:1000000/1": (".abc", ABC.replace("M:3/4", "M:1000000/1"),
                    r"unusable time signature with 1000000 beats \(at most 64\)"),
    "100000 beats": (".musicxml", MUSICXML.replace("<beats>3", "<beats>100000"),
                     r"unusable time signature with 100000 beats \(at most 64\)"),
    "a zip bomb": (".mxl", MUSICXML.replace("<part-list>", "<!--" + " " * 40_000_000 + "-->"
                                             "<part-list>"), r"unpacks to \d+ bytes \(> \d+\)"),
}


@pytest.mark.parametrize("name", list(HOSTILE_NOTATION))
def test_hostile_notation_is_refused_before_music21_reads_it(worker, name):
    suffix, text, reason = HOSTILE_NOTATION[name]
    data = _mxl(text) if suffix == ".mxl" else text.encode()
    assert len(data) < 100_000
    outcome = check(worker.read(suffix, data, NOTATION), NOTATION)
    assert isinstance(outcome, str) and re.fullmatch(reason, outcome), outcome


def test_a_glob_does_not_follow_link_loops(tmp_path):
    (tmp_path / "a").mkdir()
    write_midi_file(tmp_path / "a" / "x.mid", [MELODY])
    for name, target in (("self", "."), ("up", ".."), ("root", str(tmp_path))):
        (tmp_path / "a" / name).symlink_to(target, target_is_directory=True)
    found = readers.expand_inputs([f"{tmp_path}/**/*.mid"])
    assert found == [tmp_path / "a" / "x.mid"]
