"""Shared fixtures for the preprocessing tests: real MIDI files written with mido, real pieces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mido
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from preprocessing.piece import Piece, quantize

TICKS_PER_BEAT = 480


def write_midi_file(path, tracks, *, midi_type: int = 1, tempos=((0, 120.0),),
                    time_signatures=((0, 4, 4),), ticks_per_beat: int = TICKS_PER_BEAT) -> Path:
    """Writes a real Standard MIDI File with mido and returns its path.

    Args:
        path: where to write.
        tracks: one list of notes per track; a note is (pitch, start_beats, dur_beats[, velocity,
            channel]). The channel defaults to the track's index (skipping 9, the drum channel);
            give channel 9 explicitly for a drum track.
        midi_type: 0 (everything merged into one track) or 1 (a conductor track, then one track
            per entry of `tracks`).
        tempos: (beat, quarter notes per minute) changes.
        time_signatures: (beat, numerator, denominator) changes.
        ticks_per_beat: the file's resolution.
    """
    assert midi_type in (0, 1)

    def tick(beats):
        return int(round(beats * ticks_per_beat))

    meta = [(tick(b), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(q), time=0))
            for b, q in tempos]
    meta += [(tick(b), 0, mido.MetaMessage("time_signature", numerator=n, denominator=d, time=0))
             for b, n, d in time_signatures]

    def note_events(index, notes):
        default_channel = index if index < 9 else index + 1
        events = []
        for note in notes:
            pitch, start, dur = note[:3]
            velocity = note[3] if len(note) > 3 else 80
            channel = note[4] if len(note) > 4 else default_channel
            # note-offs sort before note-ons at the same tick (priority 1 < 2)
            events.append((tick(start), 2, mido.Message("note_on", note=pitch, velocity=velocity,
                                                        channel=channel, time=0)))
            events.append((tick(start + dur), 1, mido.Message("note_off", note=pitch, velocity=0,
                                                              channel=channel, time=0)))
        return events

    def to_track(events, name=None):
        track = mido.MidiTrack()
        if name:
            track.append(mido.MetaMessage("track_name", name=name, time=0))
        now = 0
        for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=t - now))
            now = t
        track.append(mido.MetaMessage("end_of_track", time=0))
        return track

    midi = mido.MidiFile(type=midi_type, ticks_per_beat=ticks_per_beat)
    if midi_type == 0:
        events = list(meta)
        for i, notes in enumerate(tracks):
            events += note_events(i, notes)
        midi.tracks.append(to_track(events))
    else:
        midi.tracks.append(to_track(meta, "conductor"))
        for i, notes in enumerate(tracks):
            midi.tracks.append(to_track(note_events(i, notes), f"track {i}"))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


@pytest.fixture
def write_midi():
    """The `write_midi_file` helper as a fixture."""
    return write_midi_file


def grid_notes(piece: Piece, steps_per_quarter: int = 4) -> set[tuple[int, int, int]]:
    """(pitch, onset step, length step) of every note of a piece."""
    onset, length = quantize(piece, steps_per_quarter)
    return set(zip(piece.pitch.tolist(), onset.tolist(), length.tolist()))


def notes_of(piece: Piece) -> list[tuple[int, float, float]]:
    """(pitch, start, duration) of every note, sorted by (start, pitch, duration)."""
    rows = zip(piece.pitch.tolist(), piece.start.tolist(), piece.duration.tolist())
    return sorted(rows, key=lambda r: (r[1], r[0], r[2]))


def nade_log_likelihood(b, c, W, V, v) -> float:
    """log p(v) of one frame v [K] under a NADE with biases b [K], c [H] and weights W [H, K],
    V [K, H], key by key: the NADE's definition (`trainer.models.nade`)."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    total = 0.0
    for k in range(len(v)):
        p = sigmoid(b[k] + V[k] @ sigmoid(c + W[:, :k] @ v[:k]))
        total += np.log(p if v[k] else 1 - p)
    return total


def make_piece(rows, *, name="hand-made", digest="d0", bar_starts=None, qpm=120.0) -> Piece:
    """A Piece from (pitch, start, duration[, velocity]) rows in quarter notes."""
    rows = [tuple(r) + (80,) * (4 - len(r)) for r in rows]
    pitch, start, duration, velocity = (np.array(c) for c in zip(*rows))
    end = float((start + duration).max())
    if bar_starts is None:
        bar_starts = np.arange(0.0, end, 4.0)
    return Piece(name=name, digest=digest, pitch=pitch, start=start, duration=duration,
                 velocity=velocity, bar_starts=bar_starts, qpm=qpm)


# Melodies used in several test modules -----------------------------------------------------------

C_MAJOR_SCALE = [(p, i * 1.0, 1.0) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]

# a two-voice phrase: melody in track 0, a bass line in track 1 (quarter notes in beats)
MELODY = [(72, 0, 1), (74, 1, 1), (76, 2, 0.5), (77, 2.5, 0.5), (79, 3, 1),
          (77, 4, 2), (76, 6, 1), (74, 7, 1)]
BASS = [(48, 0, 2), (43, 2, 2), (45, 4, 2), (41, 6, 2)]


@pytest.fixture
def bach_paths():
    """Local paths of the music21 corpus files by Bach (no downloads)."""
    from music21 import corpus

    return [Path(p) for p in corpus.getComposer("bach")]


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture(scope="module", autouse=True)
def parse_cache(tmp_path_factory):
    """One parse cache per test module, for the datasets and models that module-scoped fixtures
    build (before any function-scoped fixture runs), away from the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("module-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("COMPOSER_CACHE", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(autouse=True)
def _no_home_cache(monkeypatch, tmp_path_factory):
    """Points the default parse cache of any subprocess away from ~/.cache.

    Every test passes a cache folder explicitly; this only guards a CLI run that forgets to.
    """
    monkeypatch.setenv("COMPOSER_CACHE", str(tmp_path_factory.mktemp("home") / "cache"))


DRUMS = [(36, i * 0.5, 0.25, 100, 9) for i in range(16)]  # channel 9: General MIDI percussion


# Unusable files: each maker writes one into `folder` and returns its path ----------------------

def _truncated(folder, write_midi):
    path = write_midi(folder / "truncated.mid", [MELODY, BASS])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(folder, write_midi):
    path = folder / "notes.mid"
    path.write_text("C D E F G, this is a text file, not MIDI\n")
    return path


def _empty(folder, write_midi):
    path = folder / "empty.mid"
    path.write_bytes(b"")
    return path


def _drums_only(folder, write_midi):
    return write_midi(folder / "drums.mid", [DRUMS])


def _no_notes(folder, write_midi):
    return write_midi(folder / "silent.mid", [[]])


def _too_long(folder, write_midi):
    # two notes 30 000 quarter notes apart: past the default max_quarters (20 000)
    return write_midi(folder / "endless.mid", [[(60, 0, 1), (62, 30_000, 1)]])


def _garbage_musicxml(folder, write_midi):
    path = folder / "garbage.musicxml"
    path.write_text("<<< this is not <xml> at all &&&")
    return path


def _unsupported(folder, write_midi):
    path = folder / "notes.txt"
    path.write_text("C D E F G")
    return path


# name → (maker, the reason after "PATH: " as a regular expression)
BAD_INPUTS = {
    "truncated MIDI": (_truncated, r"not a readable MIDI file \(.+\)"),
    "text named .mid": (_text, r"not a readable MIDI file \(.*MThd.*\)"),
    "empty file": (_empty, r"empty file"),
    "drums only": (_drums_only, r"drum tracks only"),
    "no notes": (_no_notes, r"no notes in the selected tracks"),
    "too long": (_too_long, r"too long \(30001 quarter notes > 20000\)"),
    "garbage MusicXML": (_garbage_musicxml, r"cannot parse musicxml \(.+\)"),
    "unsupported extension": (_unsupported, r"unsupported file type \.txt \(expected one of "
                                            r"\.mid, .*\.krn\)"),
}


def two_voices(seed: int) -> list:
    """A distinct 8-bar piece per seed: a melody on the C major scale over a bass, as the
    (melody, bass) note lists `write_midi_file` takes."""
    rng = np.random.default_rng(seed)
    scale = [0, 2, 4, 5, 7, 9, 11]
    melody, t = [], 0.0
    while t < 32:
        length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        melody.append((60 + scale[rng.integers(7)] + 12 * int(rng.integers(2)), t, length))
        t += length
    bass = [(36 + scale[int(rng.integers(7))], 2.0 * b, 2.0) for b in range(16)]
    return [melody, bass]


# --- a real `python -m serving.server`, for the serving tests ------------------------------------

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen
    grpc: str
    rest: str
    models: list
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]


def start_server(config: Path, logs: Path, *extra: str, timeout: float = 120) -> Server:
    """Starts `python -m serving.server` on 127.0.0.1 with free ports (plus `extra` flags) and
    waits for its ready line."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout", logs / "stderr"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving.server", "--model-config", str(config),
             "--host", "127.0.0.1", "--port", "0", "--rest-port", "0", *extra],
            cwd=REPO, env=env, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            if line.startswith("{"):
                ready = json.loads(line)
                return Server(proc, ready["grpc"], ready["rest"], ready["models"], err)
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{err.read_text()}")
        time.sleep(0.1)
    stop_server(proc)
    raise AssertionError(f"no ready line in {timeout} s:\n{err.read_text()[-4000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape(server) -> dict:
    """(sample name, labels as a sorted tuple) → value, parsed with prometheus_client."""
    with urllib.request.urlopen(server.rest + "/monitoring/prometheus/metrics",
                                timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """The session's tiny trained and exported models (`tests.zoo.Zoo`): `zoo(name, rep)`,
    `zoo(name, rep, encoding)`, and with hparams changed, `zoo(name, rep, condition=True)`."""
    from tests.zoo import Zoo

    base = tmp_path_factory.getbasetemp()
    # under pytest-xdist each worker's basetemp is a folder of the session's: the workers share
    # the zoo's datasets and trained models through a folder beside theirs
    shared = base.parent / "zoo-shared" if os.environ.get("PYTEST_XDIST_WORKER") else None
    return Zoo(tmp_path_factory.mktemp("zoo"), shared)


SLOW_FIXTURES = {"server", "cli"}  # a server subprocess; CLI runs including a subprocess


# the modules that take longest, longest first (seconds on two cores, roughly). Run first, so
# that pytest-xdist's workers (`--dist loadfile --no-loadscope-reorder`) end together instead of
# one of them starting a long module when the other is nearly done
LONGEST_MODULES = ["test_trainer.py", "test_export.py", "test_conditional.py",
                   "test_studio.py", "test_serving_generators.py", "test_vae_gan.py",
                   "test_serving.py", "test_rnn_nade.py", "test_distributed.py",
                   "test_refine.py"]


def pytest_collection_modifyitems(items):
    """Marks `slow` every test that uses a server or a CLI subprocess fixture (`-m "not slow"`
    leaves them out; CI runs everything). Tests that start subprocesses themselves carry the
    mark by hand.

    Orders the modules longest first (LONGEST_MODULES, then the others by their number of
    tests, as pytest-xdist's own reordering would); the tests of a module keep their order."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    counts: dict[str, int] = {}
    for item in items:
        counts[item.path.name] = counts.get(item.path.name, 0) + 1

    def rank(item):
        name = item.path.name
        if name in LONGEST_MODULES:
            return LONGEST_MODULES.index(name), 0
        return len(LONGEST_MODULES), -counts[name]

    items.sort(key=rank)  # stable: a module's tests stay in order
