"""dataset.build / load_split, the parse cache, the split, and the `python -m preprocessing` CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocessing import bars, dataset, notes, pianoroll
from preprocessing.dataset import Settings, split_of
from preprocessing.piece import InputError
from preprocessing.readers import ReadOptions, content_digest, read_file
from tests.conftest import BAD_INPUTS, BASS, MELODY, grid_notes, notes_of

REPO = Path(__file__).resolve().parents[1]

ABC_TWO_TUNES = """\
X:1
T:First
M:4/4
L:1/4
K:C
C D E F | G A B c |

X:2
T:Second
M:3/4
L:1/8
K:G
G2 A2 B2 | d4 z2 |
"""


def melody(k: int) -> list[tuple[int, float, float]]:
    """The k-th of a family of distinct small melodies (so every file has its own digest)."""
    return [(55 + (k * 5 + j * 3) % 24, j * 0.5, 0.5 + 0.5 * (j % 2)) for j in range(6 + k % 5)]


def files_by_split(folder: Path, write_midi, settings: Settings, per_split: int = 1) -> dict:
    """Writes melodies into `folder` until each split has `per_split` files; {split: [paths]}."""
    found = {s: [] for s in dataset.SPLITS}
    for k in range(500):
        if all(len(v) >= per_split for v in found.values()):
            return found
        path = write_midi(folder / f"m{k:03d}.mid", [melody(k)])
        split = split_of(content_digest(path.read_bytes()), settings)
        if len(found[split]) < per_split:
            found[split].append(path)
        else:
            path.unlink()
    raise AssertionError("no melody landed in some split")


def build(inputs, out, settings=Settings(), **kwargs):
    kwargs.setdefault("cache_dir", out.parent / "cache")
    return dataset.build([str(i) for i in inputs], out, settings, progress=False, **kwargs)


def read_json(path: Path):
    return json.loads(path.read_text())


def cache_entries(cache_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every cache file with its (inode, mtime in ns): both change when a file is rewritten."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(cache_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def mixed_folder(tmp_path, write_midi):
    """Good files (two MIDI, one ABC with two tunes) and one file of each unusable kind.

    Returns (inputs, good paths, {bad path: reason pattern}); the .txt file is given explicitly
    since a folder's expansion leaves other file types out.
    """
    folder = tmp_path / "in"
    folder.mkdir()
    good = [write_midi(folder / "a.mid", [MELODY, BASS]),
            write_midi(folder / "sub" / "b.midi", [melody(3)], midi_type=0)]
    (folder / "sub" / "tunes.abc").write_text(ABC_TWO_TUNES)
    good.append(folder / "sub" / "tunes.abc")
    bad = {make(folder, write_midi): reason for make, reason in BAD_INPUTS.values()}
    inputs = [folder, folder / "notes.txt"]
    return inputs, good, bad


# --- build: report, meta, shards ----------------------------------------------------------------

def test_build_reports_every_file(tmp_path, mixed_folder):
    inputs, good, bad = mixed_folder
    out = tmp_path / "out"

    summary = build(inputs, out)

    report = read_json(out / "report.json")
    rows = {Path(r["file"]): r for r in report["files"]}
    assert set(rows) == set(good) | set(bad)
    assert len(report["files"]) == len(good) + len(bad)
    for path in good:
        assert (rows[path]["status"], rows[path]["reason"]) == ("ok", "")
    for path, reason in bad.items():
        row = rows[path]
        assert row["status"] == "skipped"
        assert re.fullmatch(rf"{re.escape(str(path))}: {reason}", row["reason"]), row["reason"]
        assert "\n" not in row["reason"]
    assert summary["files"] == len(good) + len(bad) == 11
    assert (summary["ok"], summary["skipped"]) == (3, 8)
    assert sum(summary["pieces"].values()) == 4  # the ABC file holds two tunes
    assert summary["notes"] == 12 + len(melody(3)) + 8 + 4
    assert summary["seconds"] >= 0
    assert report["summary"] == summary


def test_build_writes_meta_vocab_and_shards(tmp_path, mixed_folder):
    inputs, good, _ = mixed_folder
    out = tmp_path / "out"

    summary = build(inputs, out)

    meta = read_json(out / "meta.json")
    assert meta["format"] == dataset.CACHE_VERSION
    assert Settings.from_dict(meta["settings"]) == Settings()
    assert {k: v for k, v in summary.items() if k != "seconds"} == meta["summary"]
    names = sorted(p["name"] for split in meta["splits"].values() for p in split)
    tunes = good[2]
    assert names == sorted([str(good[0]), str(good[1]), f"{tunes}#0", f"{tunes}#1"])
    for split, entries in meta["splits"].items():
        assert [e["name"] for e in entries] == sorted(e["name"] for e in entries)
        for entry in entries:
            assert split_of(entry["digest"]) == split
            assert entry["variants"] == 1
        shards = sorted(out.glob(f"{split}-*.npz"))
        assert [s.name for s in shards] == ([f"{split}-00000.npz"] if entries else [])
        assert len(dataset.load_split(out, split)) == len(entries)
    vocab = notes.Vocabulary.load(out / "vocab.json")
    assert vocab.tokens[:2] == (notes.OOV, notes.REST)
    # nothing but the dataset is left in the output's parent (no staging folders)
    assert sorted(p.name for p in out.parent.iterdir()) == ["cache", "in", "out"]


def test_load_split_decodes_to_the_input_notes(tmp_path, write_midi):
    folder = tmp_path / "in"
    paths = [write_midi(folder / "a.mid", [MELODY, BASS]),
             write_midi(folder / "b.mid", [melody(1)]),
             write_midi(folder / "c.mid", [melody(2), melody(7)], tempos=[(0, 72)])]
    settings = Settings(validation=0.0, test=0.0)
    out = tmp_path / "out"

    build([folder], out, settings)

    meta = read_json(out / "meta.json")
    vocab = notes.Vocabulary.load(out / "vocab.json")
    items = dataset.load_split(out, "train")
    assert [e["name"] for e in meta["splits"]["train"]] == [str(p) for p in paths]
    assert [e["qpm"] for e in meta["splits"]["train"]] == pytest.approx([120, 120, 72], abs=1e-3)
    assert len(items) == 3
    for path, item in zip(paths, items):
        assert item.dtype == np.int32 and item.ndim == 2 and item.shape[1] == 3
        decoded = notes.events_to_piece(vocab.decode(item))
        assert grid_notes(decoded) == grid_notes(read_file(path)[0])


def test_nothing_usable_is_an_error_and_still_reports(tmp_path, write_midi):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = [make(folder, write_midi) for make, _ in BAD_INPUTS.values()]
    out = tmp_path / "out"

    with pytest.raises(InputError, match=r"^nothing usable in .*: all 8 files skipped "
                                         r"\(reasons in .*report\.json\)$"):
        build([folder, folder / "notes.txt"], out)

    report = read_json(out / "report.json")
    assert sorted(r["file"] for r in report["files"]) == sorted(str(p) for p in bad)
    assert {r["status"] for r in report["files"]} == {"skipped"}
    assert all(r["reason"].startswith(r["file"] + ": ") for r in report["files"])
    assert report["summary"]["skipped"] == 8 and report["summary"]["ok"] == 0


def test_an_input_naming_nothing_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"nowhere: no such file or directory"):
        build([tmp_path / "nowhere"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rebuilding_replaces_the_old_dataset(tmp_path, write_midi):
    settings = Settings(validation=0.3, test=0.3)
    by_split = files_by_split(tmp_path / "in", write_midi, settings)
    out = tmp_path / "out"
    build([tmp_path / "in"], out, settings)
    assert {p.name for p in out.glob("*.npz")} == {
        "train-00000.npz", "validation-00000.npz", "test-00000.npz"}

    build(by_split["train"], out, settings)

    assert {p.name for p in out.glob("*.npz")} == {"train-00000.npz"}
    assert read_json(out / "meta.json")["summary"]["files"] == 1
    assert dataset.load_split(out, "validation") == []


# --- other representations ----------------------------------------------------------------------

@pytest.mark.parametrize("encoding,rank", [("active", 2), ("onset-sustain", 3)])
def test_pianoroll_through_build(tmp_path, write_midi, encoding, rank):
    folder = tmp_path / "in"
    paths = [write_midi(folder / "a.mid", [MELODY, BASS]),
             write_midi(folder / "b.mid", [melody(4)])]
    settings = Settings(representation="pianoroll", encoding=encoding, steps_per_quarter=2,
                        validation=0.0, test=0.0)

    build([folder], tmp_path / "out", settings)

    assert not (tmp_path / "out" / "vocab.json").exists()
    items = dataset.load_split(tmp_path / "out", "train")
    assert len(items) == 2
    for path, roll in zip(paths, items):
        piece = read_file(path)[0]
        assert roll.dtype == np.uint8 and roll.ndim == rank
        assert roll.shape[:2] == (int(round(piece.end * 2)), 88)
        np.testing.assert_array_equal(roll, pianoroll.piece_to_roll(piece, 2, encoding))
        assert grid_notes(pianoroll.roll_to_piece(roll, 2), 2) == grid_notes(piece, 2)


def test_bars_through_build(tmp_path, write_midi):
    folder = tmp_path / "in"
    paths = [write_midi(folder / "a.mid", [MELODY, BASS]),  # 2 bars of 4/4
             write_midi(folder / "b.mid", [[(67, i, 1) for i in range(9)]],
                        time_signatures=[(0, 3, 4)])]  # 3 bars of 3/4
    settings = Settings(representation="bars", validation=0.0, test=0.0)

    build([folder], tmp_path / "out", settings)

    items = dataset.load_split(tmp_path / "out", "train")
    assert [item["melody"].shape for item in items] == [(2, 16, 128), (3, 16, 128)]
    for path, item in zip(paths, items):
        assert set(item) == {"melody", "previous", "chord"}
        assert item["previous"].shape == item["melody"].shape
        assert item["chord"].shape == (len(item["melody"]), 13)
        expected = bars.piece_to_bars(read_file(path)[0])
        for key in item:
            np.testing.assert_array_equal(item[key], expected[key])
    a = items[0]
    assert a["melody"][0].argmax(axis=1).tolist()[:4] == [72] * 4
    assert np.flatnonzero(a["chord"][0]).tolist() == [0]  # C (bass) and C (melody) on beat 1


# --- augmentation and key -----------------------------------------------------------------------

def test_augment_multiplies_only_training_pieces(tmp_path, write_midi):
    settings = Settings(augment=2, validation=0.3, test=0.3)
    by_split = files_by_split(tmp_path / "in", write_midi, settings, per_split=2)
    out = tmp_path / "out"

    summary = build([tmp_path / "in"], out, settings)

    meta = read_json(out / "meta.json")
    assert summary["pieces"] == {"train": 2, "validation": 2, "test": 2}
    assert [e["variants"] for e in meta["splits"]["train"]] == [5, 5]
    assert [e["variants"] for e in meta["splits"]["validation"]] == [1, 1]
    assert [e["variants"] for e in meta["splits"]["test"]] == [1, 1]
    vocab = notes.Vocabulary.load(out / "vocab.json")
    train = dataset.load_split(out, "train")
    assert len(train) == 10
    assert len(dataset.load_split(out, "validation")) == len(dataset.load_split(out, "test")) == 2
    # the variants of the first training piece: itself, then -2, -1, +1, +2 semitones
    original = read_file(by_split["train"][0])[0]
    for item, shift in zip(train[:5], [0, -2, -1, 1, 2]):
        decoded = notes.events_to_piece(vocab.decode(item))
        assert grid_notes(decoded) == grid_notes(original.transposed(shift))


def test_augment_of_a_piece_at_the_top_of_the_midi_range(tmp_path, write_midi):
    """Transposing up can leave a variant without notes; the build must not crash on it."""
    write_midi(tmp_path / "in" / "a.mid", [MELODY])
    write_midi(tmp_path / "in" / "high.mid", [[(127, 0, 1), (127, 1, 1), (126, 2, 1)]])
    settings = Settings(augment=2, validation=0.0, test=0.0)

    summary = build([tmp_path / "in"], tmp_path / "out", settings)

    assert summary["files"] == 2 and summary["ok"] >= 1
    report = read_json(tmp_path / "out" / "report.json")
    assert [Path(r["file"]).name for r in report["files"]] == ["a.mid", "high.mid"]


def test_to_c_transposes_every_piece(tmp_path, write_midi):
    d_major = [(p + 2, float(i), 1.0) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    write_midi(tmp_path / "in" / "d.mid", [d_major])
    settings = Settings(to_c=True, validation=0.0, test=0.0)

    build([tmp_path / "in"], tmp_path / "out", settings)

    vocab = notes.Vocabulary.load(tmp_path / "out" / "vocab.json")
    (item,) = dataset.load_split(tmp_path / "out", "train")
    decoded = notes.events_to_piece(vocab.decode(item))
    assert [p for p, _, _ in notes_of(decoded)] == [60, 62, 64, 65, 67, 69, 71, 72]


# --- split --------------------------------------------------------------------------------------

def test_split_of_fixed_digests():
    assert split_of("000000000000000000000000") == "test"
    assert split_of("111111111111111111111111") == "train"
    assert split_of("aaaaaaaaaaaaaaaaaaaaaaaa") == "validation"
    wide = Settings(validation=0.5, test=0.3)
    assert split_of("000000000000000000000000", wide) == "validation"
    assert split_of("111111111111111111111111", wide) == "test"
    assert split_of("dddddddddddddddddddddddd", wide) == "train"
    assert split_of("aaaaaaaaaaaaaaaaaaaaaaaa", Settings(validation=0.0, test=0.0)) == "train"


def test_split_shares_follow_the_settings():
    digests = [f"{k:024x}" for k in range(2000)]
    shares = {s: sum(split_of(d) == s for d in digests) / len(digests) for s in dataset.SPLITS}
    assert shares["validation"] == pytest.approx(0.1, abs=0.025)
    assert shares["test"] == pytest.approx(0.1, abs=0.025)


def test_same_bytes_at_two_paths_get_the_same_split(tmp_path, write_midi):
    first = write_midi(tmp_path / "one" / "x.mid", [MELODY])
    second = tmp_path / "two" / "renamed.midi"
    second.parent.mkdir()
    shutil.copy(first, second)

    a, b = read_file(first)[0], read_file(second)[0]

    assert a.digest == b.digest == content_digest(first.read_bytes())
    assert split_of(a.digest) == split_of(b.digest)
    assert a.name != b.name


def test_building_twice_gives_identical_meta(tmp_path, write_midi):
    settings = Settings(validation=0.3, test=0.3)
    files_by_split(tmp_path / "in", write_midi, settings, per_split=2)
    (tmp_path / "in" / "tunes.abc").write_text(ABC_TWO_TUNES)

    build([tmp_path / "in"], tmp_path / "first", settings, cache_dir=tmp_path / "c1")
    build([tmp_path / "in"], tmp_path / "second", settings, cache_dir=None)

    first, second = (read_json(tmp_path / f / "meta.json") for f in ("first", "second"))
    assert first == second
    assert [len(first["splits"][s]) for s in dataset.SPLITS] >= [2, 2, 2]
    for name in ("train-00000.npz", "validation-00000.npz", "test-00000.npz"):
        with np.load(tmp_path / "first" / name) as a, np.load(tmp_path / "second" / name) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_parallel_build_matches_a_serial_one(tmp_path, write_midi):
    folder = tmp_path / "in"
    for k in range(18):
        write_midi(folder / f"m{k:02d}.mid", [melody(k)])
    (folder / "broken.mid").write_text("not midi")

    build([folder], tmp_path / "serial", workers=1, cache_dir=None)
    build([folder], tmp_path / "parallel", workers=2, cache_dir=None)

    assert read_json(tmp_path / "serial" / "meta.json") == \
        read_json(tmp_path / "parallel" / "meta.json")
    serial, parallel = (read_json(tmp_path / f / "report.json") for f in ("serial", "parallel"))
    assert serial["files"] == parallel["files"]
    assert parallel["summary"]["skipped"] == 1


# --- settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields,message", [
    ({"representation": "midi"}, r"--representation: unknown 'midi'"),
    ({"encoding": "velocity"}, r"--encoding: unknown 'velocity'"),
    ({"steps_per_quarter": 0}, r"--steps-per-quarter must be >= 1"),
    ({"augment": -1}, r"--augment >= 0"),
    ({"validation": 0.6, "test": 0.4}, r"--validation \+ --test must be in \[0, 1\)"),
])
def test_bad_settings(fields, message):
    with pytest.raises(InputError, match=message):
        Settings(**fields)


def test_settings_round_trip_through_meta(tmp_path, write_midi):
    write_midi(tmp_path / "in" / "a.mid", [MELODY])
    settings = Settings(steps_per_quarter=3, max_shift=12, augment=1, validation=0.0, test=0.0,
                        read=ReadOptions(tracks="all", max_notes=500))

    build([tmp_path / "in"], tmp_path / "out", settings)

    assert Settings.from_dict(dataset.load_meta(tmp_path / "out")["settings"]) == settings


def test_load_meta_of_a_folder_that_is_no_dataset(tmp_path):
    with pytest.raises(InputError, match=rf"^{tmp_path}: not a preprocessed dataset"):
        dataset.load_meta(tmp_path)


# --- parse cache --------------------------------------------------------------------------------

def assert_same_pieces(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.name, x.digest, x.qpm) == (y.name, y.digest, y.qpm)
        for field in ("pitch", "start", "duration", "velocity", "bar_starts"):
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
            assert getattr(x, field).dtype == getattr(y, field).dtype


def test_read_cached_returns_the_parsed_pieces_and_reuses_its_entry(tmp_path, write_midi,
                                                                   cache_dir):
    path = write_midi(tmp_path / "a.mid", [MELODY, BASS], tempos=[(0, 80)],
                      time_signatures=[(0, 3, 4)])
    tunes = tmp_path / "tunes.abc"
    tunes.write_text(ABC_TWO_TUNES)

    for source in (path, tunes):
        parsed = read_file(source)
        first = dataset.read_cached(source, ReadOptions(), cache_dir)
        entries = cache_entries(cache_dir)
        second = dataset.read_cached(source, ReadOptions(), cache_dir)

        assert_same_pieces(first, parsed)
        assert_same_pieces(second, parsed)
        assert cache_entries(cache_dir) == entries  # read, not rewritten
    assert len(cache_entries(cache_dir)) == 2
    assert all(p.suffix == ".npz" for p in cache_entries(cache_dir))


def test_the_cache_is_read_instead_of_parsing(tmp_path, write_midi, cache_dir):
    """Swap the cache entries of two files: each then reads as the other's notes."""
    a = write_midi(tmp_path / "a.mid", [MELODY])
    b = write_midi(tmp_path / "b.mid", [BASS])
    dataset.read_cached(a, ReadOptions(), cache_dir)
    (entry_a,) = cache_entries(cache_dir)
    dataset.read_cached(b, ReadOptions(), cache_dir)
    (entry_b,) = set(cache_entries(cache_dir)) - {entry_a}
    saved = entry_a.read_bytes()
    entry_a.write_bytes(entry_b.read_bytes())
    entry_b.write_bytes(saved)

    (from_a,) = dataset.read_cached(a, ReadOptions(), cache_dir)

    assert notes_of(from_a) == notes_of(read_file(b)[0])


def test_an_unreadable_cache_entry_is_parsed_again(tmp_path, write_midi, cache_dir):
    path = write_midi(tmp_path / "a.mid", [MELODY])
    dataset.read_cached(path, ReadOptions(), cache_dir)
    (entry,) = cache_entries(cache_dir)
    entry.write_bytes(b"garbage, not an npz file")

    pieces = dataset.read_cached(path, ReadOptions(), cache_dir)

    assert_same_pieces(pieces, read_file(path))
    with np.load(entry) as stored:  # rewritten with the parsed piece
        assert int(stored["count"]) == 1


def test_read_options_key_the_cache(tmp_path, write_midi, cache_dir):
    path = write_midi(tmp_path / "band.mid", [MELODY, [(36, i, 0.5, 100, 9) for i in range(8)]])

    default = dataset.read_cached(path, ReadOptions(), cache_dir)[0]
    everything = dataset.read_cached(path, ReadOptions(tracks="all"), cache_dir)[0]

    assert (len(default), len(everything)) == (8, 16)
    assert len(cache_entries(cache_dir)) == 2
    assert len(dataset.read_cached(path, ReadOptions(), cache_dir)[0]) == 8


def test_cached_piece_is_named_after_the_file_read(tmp_path, write_midi, cache_dir):
    """The cache is keyed by content; a renamed or copied file must still carry its own name."""
    first = write_midi(tmp_path / "old" / "a.mid", [MELODY])
    dataset.read_cached(first, ReadOptions(), cache_dir)
    moved = tmp_path / "new" / "b.mid"
    moved.parent.mkdir()
    shutil.copy(first, moved)

    (piece,) = dataset.read_cached(moved, ReadOptions(), cache_dir)

    assert piece.name == str(moved)


def test_cache_remembers_a_skip(tmp_path, cache_dir):
    bad = tmp_path / "bad.mid"
    bad.write_text("not a MIDI file")
    with pytest.raises(InputError, match=rf"^{bad}: not a readable MIDI file"):
        dataset.read_cached(bad, ReadOptions(), cache_dir)
    entries = cache_entries(cache_dir)
    (entry,) = entries
    with np.load(entry) as stored:
        assert str(stored["skipped"]).startswith("{path}: not a readable MIDI file")

    copy = tmp_path / "copy.mid"
    shutil.copy(bad, copy)
    with pytest.raises(InputError, match=rf"^{copy}: not a readable MIDI file"):
        dataset.read_cached(copy, ReadOptions(), cache_dir)

    # the remembered skip was used: the entry was read, not parsed again and rewritten
    assert cache_entries(cache_dir) == entries, "the skip was parsed again and re-cached"


def test_second_build_reuses_the_cache(tmp_path, mixed_folder, cache_dir):
    inputs, good, bad = mixed_folder
    build(inputs, tmp_path / "out1", cache_dir=cache_dir)
    entries = cache_entries(cache_dir)
    # one entry per file, ok or skipped; the empty file and the unsupported type are refused
    # before anything is read into the cache
    assert len(entries) == len(good) + len(bad) - 2
    ok_entries = {}
    for path, stamp in entries.items():
        with np.load(path) as stored:
            if "count" in stored:
                ok_entries[path] = stamp
    assert len(ok_entries) == len(good)

    build(inputs, tmp_path / "out2", cache_dir=cache_dir)

    after = cache_entries(cache_dir)
    assert set(after) == set(entries)
    assert {p: after[p] for p in ok_entries} == ok_entries
    assert read_json(tmp_path / "out1" / "meta.json") == read_json(tmp_path / "out2" / "meta.json")
    assert read_json(tmp_path / "out1" / "report.json")["files"] == \
        read_json(tmp_path / "out2" / "report.json")["files"]


def test_build_after_moving_the_inputs_names_the_new_paths(tmp_path, write_midi, cache_dir):
    old = tmp_path / "old"
    write_midi(old / "a.mid", [MELODY])
    settings = Settings(validation=0.0, test=0.0)
    build([old], tmp_path / "out1", settings, cache_dir=cache_dir)
    new = tmp_path / "new"
    shutil.copytree(old, new)
    shutil.rmtree(old)

    build([new], tmp_path / "out2", settings, cache_dir=cache_dir)

    meta = read_json(tmp_path / "out2" / "meta.json")
    assert [e["name"] for e in meta["splits"]["train"]] == [str(new / "a.mid")]


def test_build_without_cache_writes_none(tmp_path, write_midi, cache_dir):
    write_midi(tmp_path / "in" / "a.mid", [MELODY])
    build([tmp_path / "in"], tmp_path / "out", cache_dir=None)
    assert not cache_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


# --- the CLI ------------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "preprocessing", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_cli_builds_a_dataset(tmp_path, mixed_folder):
    inputs, good, bad = mixed_folder
    out = tmp_path / "out"

    result = run_cli("--input", *inputs, "--out", out, "--cache-dir", tmp_path / "cache",
                     "--workers", "1", "--representation", "pianoroll")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(rf"3/11 files ok, 8 skipped; pieces train \d / validation \d / test \d; "
                        rf"\d+ notes in \d+\.\d\d s → {re.escape(str(out))}", lines[0]), lines[0]
    report = read_json(out / "report.json")
    assert {r["file"] for r in report["files"] if r["status"] == "skipped"} == {
        str(p) for p in bad}
    assert all(len(r["reason"].splitlines()) == 1 for r in report["files"]
               if r["status"] == "skipped")
    assert read_json(out / "meta.json")["settings"]["representation"] == "pianoroll"
    assert (tmp_path / "cache" / "pieces").is_dir()


def test_cli_fails_when_nothing_is_usable(tmp_path, write_midi):
    folder = tmp_path / "in"
    folder.mkdir()
    for make, _ in BAD_INPUTS.values():
        make(folder, write_midi)

    result = run_cli("--input", folder, "--out", tmp_path / "out",
                     "--cache-dir", tmp_path / "cache")

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.endswith("\n")
    assert re.fullmatch(rf"error: nothing usable in {re.escape(str(folder))}: all 7 files skipped "
                        rf"\(reasons in {re.escape(str(tmp_path / 'out' / 'report.json'))}\)",
                        result.stderr.splitlines()[-1]), result.stderr
    assert len(read_json(tmp_path / "out" / "report.json")["files"]) == 7


@pytest.mark.parametrize("args,message", [
    (["--input", "{tmp}/missing"], r"error: {tmp}/missing: no such file or directory"),
    (["--input", "corpus:nosuchcomposer"], r"error: corpus:nosuchcomposer: no such music21 corpus"),
    (["--tracks", "x"], r"error: --tracks: expected 'non-drum', 'all' or indices"),
    (["--validation", "0.9", "--test", "0.2"], r"error: --validation \+ --test must be in"),
])
def test_cli_reports_bad_arguments(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = message.replace("{tmp}", re.escape(str(tmp_path)))

    result = run_cli("--out", tmp_path / "out", "--cache-dir", "", *args)

    assert result.returncode == 2
    assert re.match(message, result.stderr.splitlines()[-1]), result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_limit_and_no_cache(tmp_path, write_midi):
    folder = tmp_path / "in"
    for k in range(4):
        write_midi(folder / f"m{k}.mid", [melody(k)])

    result = run_cli("--input", folder, "--out", tmp_path / "out", "--cache-dir", "",
                     "--limit", "2", "--validation", "0", "--test", "0")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2/2 files ok, 0 skipped; pieces train 2 / validation 0 / "
                                    "test 0;")
    assert [r["file"] for r in read_json(tmp_path / "out" / "report.json")["files"]] == [
        str(folder / "m0.mid"), str(folder / "m1.mid")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert not Path(os.environ["COMPOSER_CACHE"]).exists()  # the default cache was not used


def test_corpus_input_with_limit(tmp_path):
    summary = build(["corpus:bach"], tmp_path / "out", Settings(representation="bars"), limit=3)

    report = read_json(tmp_path / "out" / "report.json")
    assert summary["files"] == 3 and summary["ok"] == 3
    assert [Path(r["file"]).name for r in report["files"]] == [
        p.name for p in sorted(Path(r["file"]) for r in report["files"])]
    items = [i for s in dataset.SPLITS for i in dataset.load_split(tmp_path / "out", s)]
    assert len(items) == 3
    assert all(i["melody"].shape[1:] == (16, 128) and i["chord"].shape[1] == 13 for i in items)
