"""Music metrics on hand-made pieces and token lists with known answers."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from scipy import stats

from evaluation import metrics as mm
from preprocessing.piece import InputError, from_notes
from tests.conftest import C_MAJOR_SCALE, make_piece

TRIAD = [(60, 0, 4), (64, 0, 4), (67, 0, 4)]
QUARTERS_BAR = [(60, b, 1) for b in range(4)]
EIGHTHS_BAR = [(62, b * 0.5, 0.5) for b in range(8)]


def bars(*patterns):
    """Concatenates one-bar (4 beats) note lists into one piece."""
    return make_piece([(p, s + 4 * i, d) for i, rows in enumerate(patterns) for p, s, d in rows])


def random_piece(rng, notes=32, step=0.5, low=55, high=80):
    pitches = rng.integers(low, high, notes)
    return from_notes([(int(p), i * step, step) for i, p in enumerate(pitches)])


# --- per-piece features -------------------------------------------------------------------------

def test_c_major_scale():
    scale = make_piece(C_MAJOR_SCALE)  # C4 .. C5, quarter notes over 8 beats

    assert mm.scale_consistency(scale) == 1.0
    assert mm.pitch_range(scale) == 12
    assert mm.used_pitches(scale) == 8
    assert mm.note_density(scale) == 1.0
    assert mm.polyphony(scale) == 1.0
    assert mm.empty_beat_rate(scale) == 0.0
    np.testing.assert_allclose(mm.inter_onset_intervals(scale), np.ones(7))
    np.testing.assert_allclose(mm.pitch_class_histogram(scale),
                               [2 / 8, 0, 1 / 8, 0, 1 / 8, 1 / 8, 0, 1 / 8, 0, 1 / 8, 0, 1 / 8])
    # C twice, six classes once: -(1/4 log2 1/4 + 6/8 log2 1/8)
    assert mm.pitch_class_entropy(scale) == pytest.approx(0.5 + 0.75 * 3)


def test_pitch_class_entropy_and_scale_of_the_chromatic_scale():
    chromatic = make_piece([(60 + i, i, 1) for i in range(12)])

    np.testing.assert_allclose(mm.pitch_class_histogram(chromatic), np.full(12, 1 / 12))
    assert mm.pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))
    assert mm.scale_consistency(chromatic) == pytest.approx(7 / 12)
    assert mm.pitch_class_entropy(make_piece([(60, 0, 1), (72, 1, 1)])) == 0.0


def test_minor_scale_and_out_of_scale_notes():
    a_harmonic_minor = make_piece([(p, i, 1) for i, p in enumerate([57, 59, 60, 62, 64, 65, 68])])
    assert mm.scale_consistency(a_harmonic_minor) == pytest.approx(6 / 7)  # G# outside A minor


def test_polyphony():
    assert mm.polyphony(make_piece(TRIAD)) == 3.0
    # 2 beats with 4 notes, 2 beats with 3, a beat of silence not counted
    held = make_piece(TRIAD + [(72, 0, 2), (60, 5, 1)])
    assert mm.polyphony(held) == pytest.approx((8 * 4 + 8 * 3 + 4 * 1) / 20)


def test_note_density_counts_the_whole_bars():
    assert mm.note_density(make_piece(C_MAJOR_SCALE)) == 1.0
    assert mm.note_density(make_piece([(60, 0, 1), (62, 1, 1)])) == 0.5  # 2 notes in a 4-beat bar


def test_length_follows_the_bar_lines():
    assert mm.length_beats(make_piece([(60, 0, 1), (62, 2, 1)])) == 4.0
    assert mm.length_beats(make_piece([(60, 0, 4)])) == 4.0
    waltz = make_piece([(60, 0, 1), (62, 3, 1.5)], bar_starts=[0.0, 3.0])
    assert mm.length_beats(waltz) == 6.0
    assert mm.length_beats(from_notes([])) == 0.0


def test_empty_beats_and_silent_steps():
    beats_0_and_2 = make_piece([(60, 0, 1), (64, 2, 1)])  # a 4-beat bar
    assert mm.empty_beat_rate(beats_0_and_2) == 0.5
    assert mm.silent_step_share(beats_0_and_2) == 0.5
    short = make_piece([(60, 0, 0.5), (64, 2, 0.25)])
    assert mm.empty_beat_rate(short) == 0.5
    assert mm.silent_step_share(short) == pytest.approx(1 - 3 / 16)
    assert mm.silent_step_share(short, steps_per_quarter=2) == pytest.approx(1 - 2 / 8)


def test_groove_consistency():
    assert mm.groove_consistency(bars(QUARTERS_BAR, QUARTERS_BAR, QUARTERS_BAR)) == 1.0
    # quarters against eighths: 4 of 16 sixteenth steps differ between every two bars
    alternating = bars(QUARTERS_BAR, EIGHTHS_BAR, QUARTERS_BAR, EIGHTHS_BAR)
    assert mm.groove_consistency(alternating) == pytest.approx(0.75)
    # only the first change differs: (4/16 + 0 + 0) / 3
    assert mm.groove_consistency(bars(QUARTERS_BAR, EIGHTHS_BAR, EIGHTHS_BAR, EIGHTHS_BAR)) == \
        pytest.approx(1 - 4 / 16 / 3)
    assert mm.groove_consistency(bars(QUARTERS_BAR)) == 1.0  # a single bar
    # in 2-beat bars the quarters repeat exactly
    assert mm.groove_consistency(bars(QUARTERS_BAR, QUARTERS_BAR), beats_per_bar=2) == 1.0


def test_inter_onset_intervals():
    piece = make_piece([(60, 0, 1), (64, 0, 1), (62, 1, 0.5), (65, 1.5, 1), (67, 3, 1)])
    np.testing.assert_allclose(mm.inter_onset_intervals(piece), [1.0, 0.5, 1.5])
    assert len(mm.inter_onset_intervals(make_piece([(60, 0, 1), (64, 0, 1)]))) == 0


def test_note_length_histogram_bins():
    lengths = [4, 1, 1, 0.5, 1 / 3, 0.3, 1.5, 6, 0.25, 0.75, 3, 2 / 3]
    piece = make_piece([(60, 8.0 * i, d) for i, d in enumerate(lengths)])
    # bins: 4, 2, 1, 1/2, 1/4, 3, 3/2, 3/4, 3/8, 4/3, 2/3, 1/3 quarters
    expected = np.array([2, 0, 2, 1, 1, 1, 1, 1, 0, 0, 1, 2]) / len(lengths)
    np.testing.assert_allclose(mm.note_length_histogram(piece), expected)
    assert mm.note_length_histogram(piece).sum() == pytest.approx(1.0)


def test_features_match_their_declared_shapes():
    values = mm.features(make_piece(C_MAJOR_SCALE))
    assert set(values) == set(mm.FEATURES)
    for name, shape in mm.FEATURES.items():
        assert np.shape(values[name]) == shape, name
        assert np.all(np.isfinite(values[name])), name
    assert values["mean_inter_onset_interval"] == 1.0


def test_an_empty_piece_has_finite_features():
    values = mm.features(from_notes([]))
    assert all(np.all(np.isfinite(v)) for v in values.values())
    assert values["empty_beat_rate"] == 1.0 and values["note_density"] == 0.0
    assert mm.silent_step_share(from_notes([])) == 1.0


# --- set comparison -----------------------------------------------------------------------------

def test_intra_and_inter_set_distances():
    intra = mm.intra_set_distances([0.0, 1.0, 3.0])
    assert sorted(intra) == [1, 1, 2, 2, 3, 3]  # every pair twice, no self-pairs
    assert len(mm.intra_set_distances([5.0])) == 0
    inter = mm.inter_set_distances([0.0, 1.0], [3.0, 4.0, 5.0])
    assert sorted(inter) == [2, 3, 3, 4, 4, 5]
    vectors = mm.inter_set_distances([[0.0, 0.0]], [[3.0, 4.0]])
    np.testing.assert_allclose(vectors, [5.0])


def test_identical_samples_overlap_fully():
    x = np.random.default_rng(0).normal(size=300)
    assert mm.kde_overlap(x, x) == pytest.approx(1.0, abs=1e-6)
    assert mm.kde_kl(x, x) == pytest.approx(0.0, abs=1e-9)


def test_different_samples_overlap_little():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 300), rng.normal(4, 1, 300)
    assert mm.kde_overlap(x, y) < 0.5
    assert mm.kde_kl(x, y) > 1.0
    assert mm.kde_overlap(x, y + 100) == pytest.approx(0.0, abs=1e-6)
    assert 0 < mm.kde_kl(x, y + 100) <= mm.MAX_KL


def test_kde_against_normal_distributions():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 4000), rng.normal(1, 1, 4000)
    # N(0, 1) against N(1, 1): overlap 2 * Phi(-1/2) = 0.617, KL = 1/2 nat (a bit less after
    # the KDE's smoothing)
    assert mm.kde_overlap(x, y) == pytest.approx(0.617, abs=0.03)
    assert mm.kde_overlap(x, y) == pytest.approx(mm.kde_overlap(y, x), abs=1e-9)
    assert mm.kde_kl(x, y) == pytest.approx(0.5, abs=0.07)


def test_voice_motion_is_how_far_the_outer_voices_move_per_step():
    # one voice, the top and the bottom: 2, 2, 1, 2, 2, 2, 1 semitones over 7 steps
    assert mm.voice_motion(make_piece(C_MAJOR_SCALE), 1) == pytest.approx(12 / 7)
    # on a sixteenth grid the same moves spread over 31 steps, most of them held
    assert mm.voice_motion(make_piece(C_MAJOR_SCALE), 4) == pytest.approx(12 / 31)
    # C+G, then D+G (the bottom moves 2, the top holds), then a silent step: left out
    two = make_piece([(60, 0, 1), (67, 0, 2), (62, 1, 1), (60, 3, 1)])
    assert mm.voice_motion(two, 1) == 1.0
    # a held bass under a note two octaves up for one step: the top leaps up and back
    assert mm.voice_motion(make_piece([(48, 0, 4), (72, 2, 1)]), 1) == pytest.approx(8.0)
    assert mm.voice_motion(make_piece([(60, 0, 1)]), 1) is None
    assert mm.voice_motion(from_notes([]), 1) is None
    # keys drawn independently step to step move far more than a line does
    rng = np.random.default_rng(0)
    assert mm.voice_motion(random_piece(rng, step=1.0), 1) > 4


def test_degenerate_samples():
    assert mm.kde_overlap([2.0, 2.0], [2.0]) == 1.0
    assert mm.kde_kl([2.0, 2.0], [2.0]) == 0.0
    assert mm.kde_overlap([2.0, 2.0], [3.0, 3.0]) == 0.0
    assert mm.kde_kl([2.0, 2.0], [3.0, 3.0]) == mm.MAX_KL
    # a constant borrows the other sample's bandwidth
    spread = np.linspace(0, 4, 50)
    assert 0 < mm.kde_overlap([2.0] * 10, spread) < 1
    assert 0 < mm.kde_kl([2.0] * 10, spread) < mm.MAX_KL
    with pytest.raises(ValueError):
        mm.kde_overlap([], [1.0])


def test_compare_sets():
    rng = np.random.default_rng(3)
    reference = [random_piece(rng) for _ in range(12)]
    similar = [random_piece(rng) for _ in range(12)]
    # one pitch, sixteenth notes: far from the reference in most features
    different = [random_piece(rng, notes=64, step=0.25, low=60, high=61) for _ in range(12)]

    close, far = mm.compare_sets(similar, reference), mm.compare_sets(different, reference)

    for result in (close, far):
        assert set(result) == set(mm.FEATURES) | {"overlap_mean"}
        for name in mm.FEATURES:
            assert 0.0 <= result[name]["overlap"] <= 1.0 and result[name]["kl"] >= 0.0
            assert result[name]["intra_reference"]["pairs"] == 12 * 11
            assert result[name]["inter"]["pairs"] == 12 * 12
    # scalar features keep each piece's value, in order
    assert close["polyphony"]["generated"] == [mm.polyphony(p) for p in similar]
    assert close["pitch_range"]["reference"] == [mm.pitch_range(p) for p in reference]
    assert "generated" not in close["pitch_class_histogram"]
    assert close["overlap_mean"] > 0.6
    assert far["overlap_mean"] < close["overlap_mean"] - 0.2
    assert far["pitch_range"]["overlap"] < 0.5


def test_compare_sets_with_small_sets():
    rng = np.random.default_rng(4)
    reference = [random_piece(rng) for _ in range(3)]
    one = mm.compare_sets(reference[:1], reference)
    assert one["pitch_range"]["intra_generated"] == {"mean": None, "std": None, "pairs": 0}
    assert np.isfinite(one["overlap_mean"])
    # constant features (every piece has the same note lengths) overlap fully
    assert one["note_length_histogram"]["overlap"] == 1.0
    with pytest.raises(InputError):
        mm.compare_sets(reference, reference[:1])
    with pytest.raises(InputError):
        mm.compare_sets([], reference)


# --- degeneracy ---------------------------------------------------------------------------------

def test_most_common_share_and_longest_repeat():
    tokens = ["a", "b", "b", "b", "a", "c", "a", "a"]
    assert mm.most_common_share(tokens) == 0.5
    assert mm.longest_repeat(tokens) == 3
    chords = [(60, 64), (60, 64), (62,)]
    assert mm.most_common_share(chords) == pytest.approx(2 / 3)
    assert mm.longest_repeat(chords) == 2
    assert mm.most_common_share([]) == 0.0 and mm.longest_repeat([]) == 0
    assert mm.longest_repeat(["x"] * 7) == 7


# --- copying ------------------------------------------------------------------------------------

def random_tokens(rng, count, vocabulary=50):
    return [f"t{i}" for i in rng.integers(0, vocabulary, count)]


def test_a_copied_piece_is_found_whole():
    rng = np.random.default_rng(5)
    training = [random_tokens(rng, 200) for _ in range(5)]
    copied = training[2][40:140]
    assert mm.longest_copied_run(copied, training) == 100
    assert mm.ngram_overlap(copied, training, 8) == 1.0


def test_unrelated_tokens_share_short_runs():
    rng = np.random.default_rng(6)
    training = [random_tokens(rng, 1000) for _ in range(20)]
    generated = random_tokens(rng, 1000)
    assert mm.longest_copied_run(generated, training) < 8
    assert mm.ngram_overlap(generated, training, 8) == 0.0
    assert mm.longest_copied_run(["unseen"] * 5, training) == 0


def test_runs_do_not_cross_training_sequences():
    training = [["a", "b", "c"], ["d", "e"]]
    assert mm.longest_copied_run(["b", "c", "d", "e"], training) == 2
    assert mm.ngram_overlap(["b", "c", "d", "e"], training, 2) == pytest.approx(2 / 3)
    assert mm.ngram_overlap(["a", "b"], training, 8) == 0.0  # fewer tokens than n
    assert mm.longest_copied_run([], training) == 0
    assert mm.longest_copied_run(["a"], []) == 0


def test_longest_copied_run_against_brute_force():
    rng = np.random.default_rng(7)

    def brute(generated, training):
        return max((j - i for i in range(len(generated)) for j in range(i + 1, len(generated) + 1)
                    if any(generated[i:j] == s[k:k + j - i] for s in training
                           for k in range(len(s) - (j - i) + 1))), default=0)

    for _ in range(100):
        training = [list(rng.integers(0, 3, rng.integers(0, 25))) for _ in range(3)]
        generated = list(rng.integers(0, 3, rng.integers(0, 15)))
        assert mm.longest_copied_run(generated, training) == brute(generated, training)


def test_longest_copied_run_is_fast():
    rng = np.random.default_rng(8)
    training = [random_tokens(rng, 1000, vocabulary=300) for _ in range(100)]  # 100k tokens
    generated = training[50][300:700] + random_tokens(rng, 600, vocabulary=300)
    started = time.perf_counter()
    assert mm.longest_copied_run(generated, training) == 400
    assert time.perf_counter() - started < 0.5


# --- drift --------------------------------------------------------------------------------------

def test_drift_by_hand():
    def piece(pitches, duration=1.0):
        return from_notes([(p, i, duration) for i, p in enumerate(pitches)])

    assert mm.drift([piece([60, 61])], [piece([61, 62])])["pitch"] == pytest.approx(1.0)
    assert mm.drift([piece([60])], [piece([65])])["pitch"] == pytest.approx(5.0)
    assert mm.drift([piece([60, 60, 61])], [piece([60, 61, 61])])["pitch"] == \
        pytest.approx(1 / 3)
    assert mm.drift([piece([63, 61, 62])], [piece([62, 63, 61])])["pitch"] == 0.0
    assert mm.drift([piece([60], 1.0)], [piece([60], 0.25)])["duration"] == pytest.approx(0.75)


def test_drift():
    rng = np.random.default_rng(10)
    pieces = [random_piece(rng) for _ in range(4)]
    assert mm.drift(pieces, pieces) == {"pitch": 0.0, "duration": 0.0}
    up = [p.transposed(2) for p in pieces]
    assert mm.drift(pieces, up) == {"pitch": pytest.approx(2.0), "duration": 0.0}
    assert mm.drift(pieces, [from_notes([])]) == {"pitch": None, "duration": None}


def test_note_distributions_keep_the_notes_w1_in_a_few_json_numbers():
    """What an export keeps of its training notes gives the W1 of the notes themselves."""
    rng = np.random.default_rng(11)

    def piece(low):
        return from_notes([(int(rng.integers(low, low + 20)), i / 2, float(rng.uniform(0.1, 3)))
                           for i in range(30)])

    train, served = [piece(50) for _ in range(5)], [piece(55) for _ in range(3)]
    kept = json.loads(json.dumps(mm.note_distributions(train)))
    assert len(kept["pitch"]["values"]) <= 128
    assert sum(kept["pitch"]["counts"]) == sum(len(p) for p in train)
    measured = mm.distribution_drift(kept, mm.note_distributions(served))
    for key in ("pitch", "duration"):
        notes = [np.concatenate([getattr(p, key) for p in pieces]) for pieces in (train, served)]
        assert measured[key] == pytest.approx(stats.wasserstein_distance(*notes), abs=1e-3)
