"""Representations (notes, pianoroll, bars), key transforms and the MIDI writer."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing import bars, notes, pianoroll, transforms, writers
from preprocessing.piece import PITCH_NAMES, InputError, from_notes
from preprocessing.readers import read_file
from tests.conftest import BASS, C_MAJOR_SCALE, MELODY, grid_notes, make_piece, notes_of

# A hand-made piece on the sixteenth grid (4 steps per quarter):
# - a leading rest of 10 quarters (40 steps: longer than max_shift = 32);
# - a C major triad with a bass note starting together but lasting longer;
# - two notes starting together with different lengths;
# - a gap of 56 steps (longer than max_shift) before the next note;
# - a repeated note without a gap, and a flat (E-) to exercise the pitch spelling.
HAND_MADE = [
    (60, 10, 1), (64, 10, 1), (67, 10, 1), (48, 10, 4),
    (72, 11, 0.5), (76, 11, 2),
    (74, 25, 1),
    (62, 26, 0.25), (62, 26.25, 0.25), (63, 26.5, 0.5, 100),
]


@pytest.fixture
def hand_made():
    return make_piece(HAND_MADE)


# --- notes --------------------------------------------------------------------------------------

def test_events_of_the_hand_made_piece(hand_made):
    events = notes.piece_to_events(hand_made)

    assert events == [
        ("R", 32, 32), ("R", 8, 8),          # the leading rest of 40 steps
        ("G4", 4, 0), ("E4", 4, 0), ("C4", 4, 0),  # notes that start together, highest first
        ("C3", 16, 4),                        # the last one carries the shift to the next onset
        ("E5", 8, 0), ("C5", 2, 32),          # together, different lengths
        ("R", 24, 24),                        # 56 = 32 + 24: a rest bridges the gap
        ("D5", 4, 4),
        ("D4", 1, 1), ("D4", 1, 1),           # repeated note without a gap
        ("E-4", 2, 2),
    ]


def test_chord_classes_of_the_hand_made_piece(hand_made):
    events = notes.piece_to_events(hand_made, chords="classes")

    assert events == [
        ("R", 32, 32), ("R", 8, 8),          # the leading rest of 40 steps
        ("C3", 16, 0),                        # longer note first, shift 0
        ("C4.E4.G4", 4, 4),                   # the chord, then 4 steps to the next onset
        ("E5", 8, 0), ("C5", 2, 32),          # together, different lengths
        ("R", 24, 24),                        # 56 = 32 + 24: a rest bridges the gap
        ("D5", 4, 4),
        ("D4", 1, 1), ("D4", 1, 1),           # repeated note without a gap
        ("E-4", 2, 2),
    ]


@pytest.mark.parametrize("chords", notes.CHORDS)
def test_notes_round_trip_is_exact_on_the_grid(hand_made, chords):
    events = notes.piece_to_events(hand_made, chords=chords)

    back = notes.events_to_piece(events, qpm=90.0, name="back")

    assert grid_notes(back) == grid_notes(hand_made)
    assert len(back) == len(hand_made)
    assert (back.name, back.qpm) == ("back", 90.0)


@pytest.mark.parametrize("steps_per_quarter,max_shift", [(4, 32), (4, 8), (12, 32), (2, 4)])
def test_rests_bridge_gaps_longer_than_max_shift(steps_per_quarter, max_shift):
    piece = make_piece([(60, 3, 1), (62, 20, 0.5), (64, 21, 1)])

    events = notes.piece_to_events(piece, steps_per_quarter, max_duration=64, max_shift=max_shift)

    assert all(shift <= max_shift for _, _, shift in events)
    assert all(d == s for t, d, s in events if t == notes.REST)
    # the onsets add up: the first note after 3 quarters, the second 17 quarters later
    assert sum(s for t, _, s in events[:[t for t, _, _ in events].index("C4")]) == \
        3 * steps_per_quarter
    back = notes.events_to_piece(events, steps_per_quarter)
    assert grid_notes(back, steps_per_quarter) == grid_notes(piece, steps_per_quarter)


def test_long_notes_are_clipped_to_max_duration():
    piece = make_piece([(60, 0, 20), (64, 1, 1)])

    events = notes.piece_to_events(piece, max_duration=32)

    assert events[0] == ("C4", 32, 4)
    back = notes.events_to_piece(events)
    assert grid_notes(back) == {(60, 0, 32), (64, 4, 4)}


def test_vocabulary_build_encode_decode(hand_made):
    events = notes.piece_to_events(hand_made, chords="classes")
    tokens = [t for t, _, _ in events]

    vocab = notes.Vocabulary.build([tokens, ["D4", "G4"]], chords="classes")

    # OOV first, the rest second, then by falling count (D4: 3 times) and name
    assert vocab.tokens == (notes.OOV, notes.REST, "D4", "C3", "C4.E4.G4", "C5", "D5", "E-4",
                            "E5", "G4")
    assert vocab.index["C4.E4.G4"] == 4
    ids = vocab.encode(events)
    assert ids.dtype == np.int32 and ids.shape == (len(events), 3)
    assert ids[:2].tolist() == [[1, 32, 32], [1, 8, 8]]
    assert vocab.decode(ids) == events


def test_a_split_vocabulary_holds_every_piano_key():
    events = [notes.piece_to_events(p) for p in (make_piece(HAND_MADE), make_piece(MELODY))]

    vocab = notes.Vocabulary.build([[t for t, _, _ in e] for e in events])

    assert len(vocab.tokens) == 2 + 88  # OOV, rest and A0-C8, seen first by falling count
    assert vocab.tokens[:4] == (notes.OOV, notes.REST, "D5", "E5")  # 3 times each
    assert set(vocab.tokens[2:]) == {PITCH_NAMES[p] for p in range(21, 109)}
    # any chord of pitches in range is in vocabulary, however rare
    cluster = make_piece([(p, 0, 1) for p in (21, 22, 50, 61, 107, 108)])
    assert 0 not in vocab.encode(notes.piece_to_events(cluster))[:, 0]


def test_vocabulary_min_count_and_unknown_tokens():
    vocab = notes.Vocabulary.build([["C4", "C4", "E4"], ["C4", "R", "G4", "E4"]], min_count=2,
                                   chords="classes")

    assert vocab.tokens == (notes.OOV, notes.REST, "C4", "E4")
    ids = vocab.encode([("G4", 2, 2), ("C4.E4", 1, 0), ("E4", 1, 1)])
    assert ids.tolist() == [[0, 2, 2], [0, 1, 0], [3, 1, 1]]  # unknown tokens → id 0
    decoded = vocab.decode(ids)
    assert decoded == [(notes.OOV, 2, 2), (notes.OOV, 1, 0), ("E4", 1, 1)]
    # OOV sounds nothing but keeps time
    assert notes_of(notes.events_to_piece(decoded)) == [(64, 0.5, 0.25)]


def test_vocabulary_save_and_load(tmp_path, hand_made):
    vocab = notes.Vocabulary.build([[t for t, _, _ in notes.piece_to_events(hand_made)]],
                                   steps_per_quarter=12, max_duration=48, max_shift=24)
    path = tmp_path / "vocab.json"

    vocab.save(path)
    loaded = notes.Vocabulary.load(path)

    assert loaded == vocab
    assert isinstance(loaded.tokens, tuple)
    assert (loaded.steps_per_quarter, loaded.max_duration, loaded.max_shift) == (12, 48, 24)


def test_loading_a_bad_vocabulary_names_the_file(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match=rf"^{path}: not a vocabulary file"):
        notes.Vocabulary.load(path)
    path.write_text('{"steps_per_quarter": 4}')
    with pytest.raises(InputError, match=rf"^{path}: not a vocabulary file"):
        notes.Vocabulary.load(path)
    with pytest.raises(InputError, match="not a vocabulary file"):
        notes.Vocabulary.load(tmp_path / "missing.json")


@pytest.mark.parametrize("event", [("C4.E4.G4", 4, 2), ("R", 32, 32), ("E-5", 1, 0),
                                   (notes.OOV, 3, 3), ("C-1", 2, 1)])
def test_event_string_round_trip(event):
    text = notes.event_string(event)

    assert text == "|".join(map(str, event))
    assert notes.parse_event_string(text) == event


def test_event_string_format():
    assert notes.event_string(("C4.E4.G4", 4, 2)) == "C4.E4.G4|4|2"
    assert notes.parse_event_string("B-3|8|0") == ("B-3", 8, 0)


def test_every_midi_pitch_survives_the_notes_round_trip():
    """Pitch names must be unique: 'E-1' is both E in octave -1 (4) and E-flat 1 (27)."""
    piece = make_piece([(p, p * 0.25, 0.25) for p in range(128)])

    back = notes.events_to_piece(notes.piece_to_events(piece))

    assert [notes.token_pitches(PITCH_NAMES[p]) for p in range(128)] == [[p] for p in range(128)]
    assert grid_notes(back) == grid_notes(piece)


def test_token_pitches():
    assert notes.token_pitches("C4.E-4.G4") == [60, 63, 67]
    assert notes.token_pitches("B-3.D4") == [58, 62]
    assert notes.chord_token([67, 60, 63, 60]) == "C4.E-4.G4"
    assert notes.token_pitches("R") == notes.token_pitches(notes.OOV) == []
    assert notes.token_pitches("H9") == []


def test_events_of_an_empty_piece():
    """A piece can lose all its notes (e.g. a transposition past pitch 127); it encodes to []."""
    empty = make_piece([(127, 0, 1)]).transposed(1)
    assert len(empty) == 0

    assert notes.piece_to_events(empty) == []


# --- pianoroll ----------------------------------------------------------------------------------

def test_active_roll_shape_and_values():
    piece = make_piece([(21, 0, 1), (60, 0.5, 0.5), (108, 1, 2)])

    roll = pianoroll.piece_to_roll(piece)

    assert roll.shape == (12, 88) and roll.dtype == np.uint8
    assert np.flatnonzero(roll[:, 0]).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(roll[:, 60 - 21]).tolist() == [2, 3]
    assert np.flatnonzero(roll[:, 87]).tolist() == list(range(4, 12))
    assert roll.sum() == 4 + 2 + 8


def test_onset_sustain_roll_shape_and_values():
    piece = make_piece([(60, 0, 1), (60, 1, 0.5), (64, 0.25, 0.5)])

    roll = pianoroll.piece_to_roll(piece, encoding="onset-sustain")

    assert roll.shape == (6, 88, 2) and roll.dtype == np.uint8
    c4, e4 = roll[:, 60 - 21], roll[:, 64 - 21]
    assert c4.tolist() == [[1, 0], [0, 1], [0, 1], [0, 1], [1, 0], [0, 1]]
    assert e4.tolist() == [[0, 0], [1, 0], [0, 1], [0, 0], [0, 0], [0, 0]]
    assert roll.sum() == 6 + 2


def test_onset_sustain_round_trip_is_exact(hand_made):
    # the hand-made piece has a repeated D4 with no gap, chords and long rests
    roll = pianoroll.piece_to_roll(hand_made, encoding="onset-sustain")

    back = pianoroll.roll_to_piece(roll, qpm=100.0)

    assert grid_notes(back) == grid_notes(hand_made)
    assert back.qpm == 100.0


def test_onset_sustain_round_trip_at_another_resolution():
    piece = make_piece([(60, 0, 1 / 3), (60, 1 / 3, 1 / 3), (67, 0, 1), (70, 2 / 3, 4 / 3)])

    roll = pianoroll.piece_to_roll(piece, steps_per_quarter=3, encoding="onset-sustain")
    back = pianoroll.roll_to_piece(roll, steps_per_quarter=3)

    assert roll.shape == (6, 88, 2)
    assert grid_notes(back, 3) == grid_notes(piece, 3)


def test_active_round_trip_of_the_roll(hand_made):
    roll = pianoroll.piece_to_roll(hand_made)

    again = pianoroll.piece_to_roll(pianoroll.roll_to_piece(roll))

    np.testing.assert_array_equal(again, roll)


def test_active_roll_merges_a_repeated_note():
    piece = make_piece([(62, 0, 0.25), (62, 0.25, 0.25), (65, 1, 1)])

    back = pianoroll.roll_to_piece(pianoroll.piece_to_roll(piece))

    assert grid_notes(back) == {(62, 0, 2), (65, 4, 4)}


def test_notes_outside_the_piano_are_dropped():
    piece = make_piece([(20, 0, 8), (60, 1, 1), (109, 0, 8), (0, 0, 1), (127, 0, 1)])

    for encoding in pianoroll.ENCODINGS:
        roll = pianoroll.piece_to_roll(piece, encoding=encoding)
        assert roll.shape[:2] == (8, 88)  # the steps of the piano notes only
        assert grid_notes(pianoroll.roll_to_piece(roll)) == {(60, 4, 4)}


def test_sampled_roll_holds_what_sounds_on_each_step():
    # one step per quarter note, as JSB Chorales: a passing eighth note between beats is not in
    # the frames, an eighth on the beat is, a half note fills two frames
    piece = make_piece([(60, 0, 0.5), (62, 0.5, 0.5), (64, 1, 2), (67, 0, 3), (69, 2.9999999, 1)])

    roll = pianoroll.piece_to_roll(piece, steps_per_quarter=1, encoding="sampled")

    assert roll.shape == (4, 88) and roll.dtype == np.uint8
    on = {(int(t), int(k) + 21) for t, k in zip(*np.nonzero(roll))}
    assert on == {(0, 60), (0, 67), (1, 64), (1, 67), (2, 64), (2, 67), (3, 69)}
    # the rounded `active` frames hold the passing D4 too (in frame 0, with the C4 it follows)
    assert pianoroll.piece_to_roll(piece, steps_per_quarter=1)[0, 62 - 21] == 1


def test_sampled_equals_active_for_music_on_the_grid():
    on_grid = make_piece([(60, 0, 1), (64, 0, 2), (67, 1.5, 0.25), (72, 3, 4)])

    np.testing.assert_array_equal(pianoroll.piece_to_roll(on_grid, encoding="sampled"),
                                  pianoroll.piece_to_roll(on_grid))


def test_unknown_roll_encoding():
    with pytest.raises(ValueError, match="unknown piano-roll encoding 'velocity'"):
        pianoroll.piece_to_roll(make_piece([(60, 0, 1)]), encoding="velocity")


# --- bars ---------------------------------------------------------------------------------------

MONOPHONIC = [(60, 0, 1), (62, 1, 1), (64, 2, 0.5), (65, 2.5, 0.25), (67, 3, 1),
              (69, 4, 2), (71, 6, 1.5), (72, 7.75, 0.25), (74, 8, 4), (76, 13, 1)]


def test_bars_shapes_and_melody():
    piece = make_piece(MONOPHONIC)

    encoded = bars.piece_to_bars(piece)

    assert set(encoded) == {"melody", "previous", "chord"}
    assert encoded["melody"].shape == (4, 16, 128) and encoded["melody"].dtype == np.uint8
    assert encoded["previous"].shape == (4, 16, 128)
    assert encoded["chord"].shape == (4, 13) and encoded["chord"].dtype == np.float32
    melody = encoded["melody"]
    assert melody.sum(axis=2).max() == 1  # at most one pitch per step
    assert melody[0].argmax(axis=1).tolist() == [60] * 4 + [62] * 4 + [64] * 2 + [65] + [0] + \
        [67] * 4
    assert melody[0, 11].sum() == 0  # the sixteenth after the 65 is silent
    assert melody[3].argmax(axis=1).tolist() == [0] * 4 + [76] * 4 + [0] * 8


def test_previous_is_the_melody_shifted_by_one_bar():
    encoded = bars.piece_to_bars(make_piece(MONOPHONIC))

    np.testing.assert_array_equal(encoded["previous"][0], 0)
    np.testing.assert_array_equal(encoded["previous"][1:], encoded["melody"][:-1])


def test_bars_take_the_highest_voice():
    piece = make_piece([(60, 0, 4), (64, 0, 2), (79, 1, 0.5), (55, 2, 2), (52, 4, 4)])

    melody = bars.piece_to_bars(piece)["melody"]

    assert melody.shape[0] == 2
    assert melody[0].argmax(axis=1).tolist() == [64] * 4 + [79] * 2 + [64] * 2 + [60] * 8
    assert melody[1].argmax(axis=1).tolist() == [52] * 16


def test_chords_at_the_first_beat():
    piece = make_piece([
        (60, 0, 4), (64, 0, 4), (67, 0, 4),      # bar 0: C-E-G
        (57, 4, 4), (60, 4, 4), (64, 4, 4),      # bar 1: A-C-E
        (67, 8.5, 4), (71, 8.5, 1), (74, 8.5, 1),  # bar 2: nothing on beat 1 until 8.5
        (76, 12, 1), (79, 12, 1), (84, 12.5, 3.5),  # bar 3: E-G, a C enters within the beat
        (62, 16.5, 0.5),                         # bar 4: a lone D at the second eighth
        (65, 21, 1),                             # bar 5: the first beat is silent
        (60, 24, 1),                             # bar 6
    ])

    chord = bars.piece_to_bars(piece)["chord"]

    assert chord.shape == (7, 13)
    c_major = np.eye(13, dtype=np.float32)[0]
    assert chord[0].tolist() == c_major.tolist()
    assert np.flatnonzero(chord[1]).tolist() == [9, 12]  # root A, minor flag
    # bar 2: G-B-D sounds from 8.5, within the first beat
    assert np.flatnonzero(chord[2]).tolist() == [7]
    # bar 3: E-G plus the G held from 8.5 and the C entering at 12.5: C major
    assert np.flatnonzero(chord[3]).tolist() == [0]
    assert np.flatnonzero(chord[4]).tolist() == [2]
    assert chord[5].tolist() == [0.0] * 13  # a silent first beat
    assert bars.piece_to_bars(piece)["melody"][5].argmax(axis=1).tolist() == [0] * 4 + [65] * 4 \
        + [0] * 8
    assert np.flatnonzero(chord[6]).tolist() == [0]


@pytest.mark.parametrize("pitch_classes,root,minor", [
    ((0, 4, 7), 0, 0.0), ((0, 4, 9), 9, 1.0), ((2, 7, 11), 7, 0.0), ((2, 5, 9), 2, 1.0),
])
def test_chord_vector(pitch_classes, root, minor):
    vector = bars.chord_vector(tuple(sorted(pitch_classes)))

    assert vector.shape == (13,)
    assert vector[:12].tolist() == np.eye(12)[root].tolist()
    assert vector[12] == minor


def test_chord_vector_of_silence():
    assert bars.chord_vector(()).tolist() == [0.0] * 13


def test_bars_follow_the_piece_bar_lines():
    # 3/4: bars of three quarters, each split into 16 steps
    piece = make_piece([(67, 0, 3), (69, 3, 1.5), (71, 4.5, 1.5)], bar_starts=[0, 3])

    melody = bars.piece_to_bars(piece)["melody"]

    assert bars.bar_bounds(piece).tolist() == [0.0, 3.0, 6.0]
    assert melody.shape == (2, 16, 128)
    assert melody[0].argmax(axis=1).tolist() == [67] * 16
    assert melody[1].argmax(axis=1).tolist() == [69] * 8 + [71] * 8


def test_bar_bounds_extend_the_last_bar_length_to_the_end():
    piece = make_piece([(60, 0, 14)], bar_starts=[0, 4, 7])  # 4/4 then 3/4
    assert bars.bar_bounds(piece).tolist() == [0, 4, 7, 10, 13, 16]


def test_bars_round_trip_of_a_monophonic_melody():
    piece = make_piece(MONOPHONIC, qpm=110)

    encoded = bars.piece_to_bars(piece)
    back = bars.bars_to_piece(encoded["melody"], qpm=110)

    assert notes_of(back) == notes_of(piece)
    assert back.qpm == 110
    assert back.bar_starts.tolist() == [0, 4, 8, 12]


def test_bars_to_piece_with_chords():
    encoded = bars.piece_to_bars(make_piece([(72, 0, 4), (60, 0, 4), (64, 0, 4), (67, 0, 4),
                                             (72, 4, 4), (57, 4, 4), (60, 4, 4), (64, 4, 4)]))

    back = bars.bars_to_piece(encoded["melody"], encoded["chord"])

    # the melody merges over the bar line (same pitch, no gap); the chords are block triads
    assert notes_of(back) == [(48, 0.0, 4.0), (52, 0.0, 4.0), (55, 0.0, 4.0), (72, 0.0, 8.0),
                              (57, 4.0, 4.0), (60, 4.0, 4.0), (64, 4.0, 4.0)]


# --- transforms ---------------------------------------------------------------------------------

def test_estimate_key_of_a_c_major_scale():
    assert transforms.estimate_key(make_piece(C_MAJOR_SCALE)) == (0, "major")


def test_estimate_key_of_an_a_minor_melody():
    a_minor = [(p, i, 1) for i, p in enumerate([57, 59, 60, 62, 64, 65, 68, 69, 64, 57])]
    assert transforms.estimate_key(make_piece(a_minor)) == (9, "minor")


@pytest.mark.parametrize("semitones", range(-5, 7))
def test_estimate_key_follows_transposition(semitones):
    piece = make_piece(C_MAJOR_SCALE).transposed(semitones)
    assert transforms.estimate_key(piece) == (semitones % 12, "major")
    assert transforms.shift_to_c(piece) == -semitones


def test_variants_to_c_moves_d_major_to_c():
    d_major = make_piece([(p + 2, s, d) for p, s, d in C_MAJOR_SCALE])
    assert transforms.estimate_key(d_major) == (2, "major")

    (moved,) = transforms.variants(d_major, to_c=True)

    assert moved.pitch.tolist() == [60, 62, 64, 65, 67, 69, 71, 72]
    assert transforms.estimate_key(moved) == (0, "major")
    np.testing.assert_array_equal(moved.start, d_major.start)


def test_variants_augment():
    piece = make_piece(C_MAJOR_SCALE)

    out = transforms.variants(piece, augment=2)

    assert len(out) == 5
    assert out[0] is piece
    assert [int(v.pitch[0]) - 60 for v in out] == [0, -2, -1, 1, 2]
    assert len(transforms.variants(piece)) == 1
    assert len(transforms.variants(piece, to_c=True, augment=1)) == 3


def test_transposition_drops_notes_leaving_the_midi_range():
    piece = make_piece([(1, 0, 1), (60, 0, 1), (126, 1, 1)])
    assert piece.transposed(-2).pitch.tolist() == [58, 124]
    assert piece.transposed(-61).pitch.tolist() == [65]
    assert piece.transposed(2).pitch.tolist() == [3, 62]


# --- writers ------------------------------------------------------------------------------------

def test_write_midi_then_read_gives_the_same_grid_notes(tmp_path, hand_made):
    path = writers.write_midi(hand_made, tmp_path / "out" / "hand.mid")

    (piece,) = read_file(path)

    assert path.exists()
    assert grid_notes(piece) == grid_notes(hand_made)
    assert sorted(piece.velocity.tolist()) == sorted(r[3] if len(r) > 3 else 80 for r in HAND_MADE)
    assert piece.qpm == pytest.approx(120.0)


def test_midi_to_tensors_to_midi(tmp_path, write_midi):
    """A real file → events → ids → events → piece → a new file → the same grid notes."""
    source = write_midi(tmp_path / "source.mid", [MELODY, BASS], tempos=[(0, 96)])
    (original,) = read_file(source)

    events = notes.piece_to_events(original)
    vocab = notes.Vocabulary.build([[t for t, _, _ in events]])
    decoded = notes.events_to_piece(vocab.decode(vocab.encode(events)), qpm=original.qpm)
    copy = writers.write_midi(decoded, tmp_path / "copy.mid")
    (again,) = read_file(copy)

    assert grid_notes(again) == grid_notes(original)
    assert again.qpm == pytest.approx(96.0, abs=1e-3)

    roll = pianoroll.piece_to_roll(original, encoding="onset-sustain")
    (from_roll,) = read_file(writers.write_midi(pianoroll.roll_to_piece(roll),
                                                tmp_path / "roll.mid"))
    assert grid_notes(from_roll) == grid_notes(original)


def test_from_notes_builds_a_piece():
    piece = from_notes([(64, 1, 1, 90), (60, 0, 0.5, 30)], name="x", qpm=70, beats_per_bar=3)

    assert notes_of(piece) == [(60, 0.0, 0.5), (64, 1.0, 1.0)]
    assert piece.velocity.tolist() == [30, 90]
    assert piece.bar_starts.tolist() == [0.0]
    assert (piece.name, piece.qpm, piece.end) == ("x", 70, 2.0)
    assert len(from_notes([])) == 0


def test_bar_bounds_survive_repeated_and_irregular_bar_lines():
    piece = make_piece([(60, 0, 1), (62, 5, 1)], bar_starts=[0.0, 4.0, 4.0])
    assert bars.bar_bounds(piece).tolist() == [0.0, 4.0, 8.0]
    # a known bar line past the end closes the last bar, whatever its length
    piece = make_piece([(60, 0, 1), (62, 4, 1)], bar_starts=[0.0, 4.0, 6.0, 10.0])
    assert bars.bar_bounds(piece).tolist() == [0.0, 4.0, 6.0]
