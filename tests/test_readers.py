"""Readers: MIDI (symusic), MusicXML / ABC / Humdrum (music21), input expansion, bad input."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from preprocessing.piece import InputError
from preprocessing.readers import SUFFIXES, ReadOptions, content_digest, expand_inputs, read_file
from tests.conftest import BAD_INPUTS, BASS, DRUMS, MELODY, grid_notes, notes_of


def expected(*tracks):
    """(pitch, start, duration) rows of the given note lists, sorted like `notes_of`."""
    rows = [(p, float(s), float(d)) for track in tracks for p, s, d, *_ in track]
    return sorted(rows, key=lambda r: (r[1], r[0], r[2]))


# --- MIDI ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("midi_type", [0, 1])
def test_midi_tracks_are_merged_into_one_piece(tmp_path, write_midi, midi_type):
    path = write_midi(tmp_path / f"type{midi_type}.mid", [MELODY, BASS], midi_type=midi_type)

    (piece,) = read_file(path)

    assert piece.name == str(path)
    assert piece.digest == content_digest(path.read_bytes())
    assert notes_of(piece) == expected(MELODY, BASS)
    assert np.all(np.diff(piece.start) >= 0)
    assert piece.velocity.tolist() == [80] * len(piece)
    assert piece.qpm == pytest.approx(120.0)
    assert piece.bar_starts.tolist() == [0.0, 4.0]


def test_midi_velocity_and_resolution_are_kept(tmp_path, write_midi):
    notes = [(60, 0, 1, 10), (64, 0.25, 0.75, 127), (67, 1 / 3, 1 / 3, 64)]
    path = write_midi(tmp_path / "v.mid", [notes], ticks_per_beat=96)

    (piece,) = read_file(path)

    assert piece.pitch.tolist() == [60, 64, 67]
    assert piece.velocity.tolist() == [10, 127, 64]
    np.testing.assert_allclose(piece.start, [0, 0.25, 1 / 3], atol=1e-2)
    np.testing.assert_allclose(piece.duration, [1, 0.75, 1 / 3], atol=1e-2)


@pytest.mark.parametrize("midi_type", [0, 1])
def test_tempo_and_time_signature_changes(tmp_path, write_midi, midi_type):
    # 4/4 for two bars, then 3/4; the notes run on to beat 14
    notes = [(60 + i % 12, float(i), 1.0) for i in range(14)]
    path = write_midi(tmp_path / "changes.mid", [notes], midi_type=midi_type,
                      tempos=[(0, 90), (4, 140), (10, 60)],
                      time_signatures=[(0, 4, 4), (8, 3, 4)])

    (piece,) = read_file(path)

    assert piece.qpm == pytest.approx(90.0, abs=1e-3)  # the first tempo
    assert piece.bar_starts.tolist() == [0.0, 4.0, 8.0, 11.0]
    # times stay in quarter notes whatever the tempo
    assert notes_of(piece) == expected(notes)


def test_time_signature_change_at_the_last_note_end_keeps_earlier_bars(tmp_path, write_midi):
    """A 3/4 signature written at the very end must not re-bar the 4/4 music before it.

    (The MELODY lasts 8 beats; some sequencers put the next section's meta events at the end.)
    """
    path = write_midi(tmp_path / "trailing-ts.mid", [MELODY],
                      time_signatures=[(0, 4, 4), (8, 3, 4)])

    (piece,) = read_file(path)

    assert piece.end == 8.0
    assert piece.bar_starts[piece.bar_starts < piece.end].tolist() == [0.0, 4.0]


def test_short_and_long_bars_are_kept(tmp_path, write_midi):
    # 1/32 gives the shortest bar the readers take (MIN_BAR); shorter ones are refused
    path = write_midi(tmp_path / "meters.mid", [[(60, 0, 6)]],
                      time_signatures=[(0, 3, 16), (1.5, 1, 32), (1.75, 12, 8)])

    (piece,) = read_file(path)

    assert piece.bar_starts.tolist() == [0.0, 0.75, 1.5, 1.625, 1.75]
    with pytest.raises(InputError, match=rf"^{path}: unusable time signature 1/64 at quarter 1"):
        read_file(write_midi(path, [[(60, 0, 6)]], time_signatures=[(0, 4, 4), (1, 1, 64)]))


@pytest.mark.parametrize("midi_type", [0, 1])
def test_drum_tracks_are_left_out_by_default(tmp_path, write_midi, midi_type):
    path = write_midi(tmp_path / "band.mid", [MELODY, DRUMS, BASS], midi_type=midi_type)

    assert notes_of(read_file(path)[0]) == expected(MELODY, BASS)
    assert notes_of(read_file(path, ReadOptions(tracks="non-drum"))[0]) == expected(MELODY, BASS)
    assert notes_of(read_file(path, ReadOptions(tracks="all"))[0]) == expected(MELODY, DRUMS, BASS)


def test_tracks_by_index(tmp_path, write_midi):
    third = [(84, 0, 4), (83, 4, 4)]
    path = write_midi(tmp_path / "three.mid", [MELODY, BASS, third])

    assert notes_of(read_file(path, ReadOptions(tracks="0,2"))[0]) == expected(MELODY, third)
    assert notes_of(read_file(path, ReadOptions(tracks="1"))[0]) == expected(BASS)
    with pytest.raises(InputError, match=r"three\.mid: no notes in the selected tracks"):
        read_file(path, ReadOptions(tracks="7"))


def test_tracks_by_index_can_pick_a_drum_track(tmp_path, write_midi):
    path = write_midi(tmp_path / "band.mid", [MELODY, DRUMS])

    assert notes_of(read_file(path, ReadOptions(tracks="1"))[0]) == expected(DRUMS)


@pytest.mark.parametrize("tracks", ["a,b", "0;2", "", "drums"])
def test_bad_track_selection_is_an_input_error(tracks):
    with pytest.raises(InputError, match=r"^--tracks: expected"):
        ReadOptions(tracks=tracks)


# --- notation formats ---------------------------------------------------------------------------

@pytest.fixture
def musicxml_file(tmp_path):
    """A two-part 3/4 score written by music21: a melody and a bass with a chord and a rest."""
    from music21 import chord, meter, note, stream, tempo

    upper = stream.Part()
    upper.append(meter.TimeSignature("3/4"))
    upper.append(tempo.MetronomeMark(number=96))
    for name in ["C5", "D5", "E5", "F5", "G5"]:
        upper.append(note.Note(name, quarterLength=1))
    upper.append(note.Note("A5", quarterLength=0.5))
    upper.append(note.Note("B5", quarterLength=0.5))
    lower = stream.Part()
    lower.append(meter.TimeSignature("3/4"))
    lower.append(chord.Chord(["C3", "G3"], quarterLength=3))
    lower.append(note.Note("F3", quarterLength=2))
    lower.append(note.Rest(quarterLength=1))
    score = stream.Score()
    score.insert(0, upper)
    score.insert(0, lower)
    return Path(score.write("musicxml", fp=tmp_path / "score.musicxml"))


UPPER = [(72, 0, 1), (74, 1, 1), (76, 2, 1), (77, 3, 1), (79, 4, 1), (81, 5, 0.5), (83, 5.5, 0.5)]
LOWER = [(48, 0, 3), (55, 0, 3), (53, 3, 2)]


def test_musicxml_written_by_music21(musicxml_file):
    (piece,) = read_file(musicxml_file)

    assert piece.name == str(musicxml_file)
    assert notes_of(piece) == expected(UPPER, LOWER)
    assert piece.qpm == 96.0
    assert piece.bar_starts.tolist() == [0.0, 3.0]
    assert piece.digest == content_digest(musicxml_file.read_bytes())


def test_musicxml_parts_by_index(musicxml_file):
    assert notes_of(read_file(musicxml_file, ReadOptions(tracks="0"))[0]) == expected(UPPER)
    assert notes_of(read_file(musicxml_file, ReadOptions(tracks="1"))[0]) == expected(LOWER)


def test_corpus_mxl_matches_music21(bach_paths):
    from music21 import converter

    path = next(p for p in bach_paths if p.name == "bwv66.6.mxl")
    score = converter.parse(path)

    (piece,) = read_file(path)
    (soprano,) = read_file(path, ReadOptions(tracks="0"))

    soprano_notes = [n for n in score.parts[0].stripTies().flatten().notes]
    assert notes_of(soprano) == expected(
        [(n.pitch.midi, n.offset, n.quarterLength) for n in soprano_notes])
    assert len(piece) == sum(len(part.stripTies().flatten().notes) for part in score.parts)
    assert piece.end == float(score.highestTime)
    assert piece.bar_starts.tolist() == [
        float(m.offset) for m in score.parts[0].getElementsByClass("Measure")]
    assert piece.bar_starts[:3].tolist() == [0.0, 1.0, 5.0]  # a one-beat pickup, then 4/4


ABC_TWO_TUNES = """\
X:1
T:First
M:4/4
L:1/4
Q:1/4=100
K:C
C D E F | G A B c |

X:2
T:Second
M:3/4
L:1/8
K:G
G2 A2 B2 | d4 z2 |
"""


def test_abc_file_with_two_tunes_gives_two_pieces(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(ABC_TWO_TUNES)

    first, second = read_file(path)

    assert (first.name, second.name) == (f"{path}#0", f"{path}#1")
    digest = content_digest(path.read_bytes())
    assert (first.digest, second.digest) == (f"{digest}-0", f"{digest}-1")
    assert notes_of(first) == [(p, float(i), 1.0)
                               for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    assert first.qpm == 100.0 and first.bar_starts.tolist() == [0.0, 4.0]
    # G major: F#; L:1/8 so "G2" is a quarter note; the rest sounds nothing
    assert notes_of(second) == [(67, 0.0, 1.0), (69, 1.0, 1.0), (71, 2.0, 1.0), (74, 3.0, 2.0)]
    assert second.qpm == 120.0 and second.bar_starts.tolist() == [0.0, 3.0]


def test_abc_file_with_one_tune_is_named_by_its_path(tmp_path):
    path = tmp_path / "one.abc"
    path.write_text(ABC_TWO_TUNES.split("\n\n")[0] + "\n")

    (piece,) = read_file(path)

    assert piece.name == str(path)
    assert len(piece) == 8


def test_humdrum_krn_from_the_corpus(bach_paths):
    from music21 import converter

    krn = sorted(p for p in bach_paths if p.suffix == ".krn")
    assert [p.name for p in krn] == ["bwv277.krn", "bwv281.krn", "bwv366.krn"]
    path = krn[0]
    score = converter.parse(path)

    (piece,) = read_file(path)

    assert len(score.parts) == 4
    assert len(piece) == sum(len(n.pitches) for n in score.stripTies().flatten().notes
                             if n.quarterLength > 0)
    assert piece.end == float(score.highestTime)
    assert piece.pitch.min() >= 36 and piece.pitch.max() <= 84  # four voices of a chorale
    assert np.all(np.diff(piece.bar_starts) > 0)


# --- bad input ----------------------------------------------------------------------------------

@pytest.fixture(params=list(BAD_INPUTS))
def bad_input(request, tmp_path, write_midi):
    """(path, reason pattern) of one kind of unusable file."""
    make, reason = BAD_INPUTS[request.param]
    return make(tmp_path, write_midi), reason


def test_bad_input_raises_an_input_error_naming_the_file(bad_input):
    path, reason = bad_input

    with pytest.raises(InputError) as info:
        read_file(path)

    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert re.fullmatch(rf"{re.escape(str(path))}: {reason}", message), message


def test_too_many_notes(tmp_path, write_midi):
    path = write_midi(tmp_path / "busy.mid", [MELODY, BASS])

    with pytest.raises(InputError, match=rf"^{path}: too long \(12 notes > 11\)$"):
        read_file(path, ReadOptions(max_notes=11))
    assert len(read_file(path, ReadOptions(max_notes=12))[0]) == 12


def test_max_quarters_and_max_bytes(tmp_path, write_midi):
    path = write_midi(tmp_path / "eight.mid", [MELODY])
    size = path.stat().st_size

    with pytest.raises(InputError, match=rf"^{path}: too long \(8 quarter notes > 7\)$"):
        read_file(path, ReadOptions(max_quarters=7))
    with pytest.raises(InputError, match=rf"^{path}: file too large \({size} bytes > 100\)$"):
        read_file(path, ReadOptions(max_bytes=100))


def test_missing_file_is_an_input_error(tmp_path):
    path = tmp_path / "nowhere.mid"
    with pytest.raises(InputError, match=rf"^{path}: cannot read \(No such file or directory\)$"):
        read_file(path)


def test_file_without_suffix_is_unsupported(tmp_path):
    path = tmp_path / "README"
    path.write_text("hello")
    with pytest.raises(InputError, match=rf"^{path}: unsupported file type \(none\)"):
        read_file(path)


def test_notation_with_drum_parts_only(tmp_path):
    from music21 import instrument, note, stream

    part = stream.Part()
    part.insert(0, instrument.BassDrum())
    for _ in range(4):
        part.append(note.Note("C2", quarterLength=1))
    score = stream.Score([part])
    path = Path(score.write("musicxml", fp=tmp_path / "drums.musicxml"))

    with pytest.raises(InputError, match=rf"^{path}: drum parts only$"):
        read_file(path)


# --- expand_inputs ------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path, write_midi):
    """A folder of inputs, one level nested, with a file of another kind beside them."""
    root = tmp_path / "in"
    write_midi(root / "b.mid", [MELODY])
    write_midi(root / "a.MID", [BASS])
    write_midi(root / "deep" / "er" / "c.midi", [MELODY])
    (root / "deep" / "tune.abc").write_text(ABC_TWO_TUNES)
    (root / "deep" / "notes.txt").write_text("not music")
    return root


def test_expand_a_directory_recursively(tree):
    assert expand_inputs([str(tree)]) == [
        tree / "a.MID", tree / "b.mid", tree / "deep" / "er" / "c.midi", tree / "deep" / "tune.abc"]


def test_expand_files_keeps_them_and_drops_duplicates(tree):
    files = [str(tree / "b.mid"), str(tree / "deep" / "notes.txt"), str(tree / "b.mid")]
    # a file given explicitly is kept whatever its type: read_file then reports it
    assert expand_inputs(files) == [tree / "b.mid", tree / "deep" / "notes.txt"]
    assert expand_inputs([str(tree), str(tree / "b.mid")]) == expand_inputs([str(tree)])


def test_expand_a_glob(tree):
    assert expand_inputs([str(tree / "**" / "*.mid*")]) == [
        tree / "b.mid", tree / "deep" / "er" / "c.midi"]
    assert expand_inputs([str(tree / "deep" / "*.abc"), str(tree / "**" / "tune.abc")]) == [
        tree / "deep" / "tune.abc"]
    with pytest.raises(InputError, match=r"\*\.abc: the pattern matches no file$"):
        expand_inputs([str(tree / "*.abc")])


def test_expand_with_limit(tree):
    assert expand_inputs([str(tree)], limit=2) == [tree / "a.MID", tree / "b.mid"]


def test_expand_a_missing_path(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(InputError, match=rf"^{missing}: no such file or directory$"):
        expand_inputs([str(missing)])


def test_expand_the_bach_corpus(bach_paths):
    files = expand_inputs(["corpus:bach"])

    assert len(files) >= 408
    assert files == sorted(files)
    assert all(f.suffix.lower() in SUFFIXES and f.is_file() for f in files)
    assert {f.suffix for f in files} >= {".mxl", ".krn"}
    assert sum(f.suffix == ".krn" for f in files) == 3
    # the chorale analyses (.rntxt) in the same corpus are not music files
    assert set(files) == {p for p in bach_paths if p.suffix.lower() in SUFFIXES}
    assert expand_inputs(["corpus:bach"], limit=5) == files[:5]


def test_expand_an_unknown_corpus():
    with pytest.raises(InputError, match=r"^corpus:nosuchcomposer: no such music21 corpus"):
        expand_inputs(["corpus:nosuchcomposer"])


def test_every_corpus_file_kind_is_readable(tmp_path, bach_paths):
    """One file of each suffix of the corpus parses into a non-empty piece (.xml included)."""
    by_suffix = {}
    for path in sorted(bach_paths):
        by_suffix.setdefault(path.suffix, path)
    for suffix in (".mxl", ".krn", ".xml"):
        copy = tmp_path / f"copy{suffix}"
        shutil.copy(by_suffix[suffix], copy)
        (piece,) = read_file(copy)
        assert len(piece) > 50 and piece.end > 8
        assert grid_notes(piece) == grid_notes(read_file(by_suffix[suffix])[0])


def test_notation_that_music21_parses_too_slowly_is_skipped(tmp_path):
    path = tmp_path / "huge-meter.abc"
    path.write_text("X:1\nM:3/4\nL:1001/8\nK:G\nG2 A2 B2 | d4 z2 | [GBd]6 |]\n")  # minutes

    began = time.monotonic()
    with pytest.raises(InputError, match=rf"^{path}: cannot parse abc \(gave up after 0.5 s\)$"):
        read_file(path, ReadOptions(max_seconds=0.5))

    assert time.monotonic() - began < 6
