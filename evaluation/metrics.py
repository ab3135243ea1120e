"""Objective music metrics: piece features, mgeval set comparison, degeneracy, copying, drift."""

from __future__ import annotations

import collections
import itertools

import numpy as np
from scipy import stats

from preprocessing.bars import bar_bounds
from preprocessing.piece import InputError, Piece, quantize

# mgeval's 12 note-length classes in quarter notes: whole, half, quarter, eighth, sixteenth;
# the same dotted (whole excepted); half-, quarter- and eighth-note triplets. A note counts in
# the class nearest its duration (absolute difference); longer notes count as whole notes.
NOTE_LENGTHS = (4.0, 2.0, 1.0, 0.5, 0.25, 3.0, 1.5, 0.75, 0.375, 4 / 3, 2 / 3, 1 / 3)
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)  # minor: natural minor
# name -> shape of the value in `features` (() for a scalar)
FEATURES = {
    "pitch_class_histogram": (12,), "note_length_histogram": (12,), "pitch_range": (),
    "used_pitches": (), "polyphony": (), "note_density": (), "mean_inter_onset_interval": (),
    "scale_consistency": (), "pitch_class_entropy": (), "empty_beat_rate": (),
    "groove_consistency": (),
}
KDE_GRID = 2048
DENSITY_FLOOR = 1e-12  # of the peak: keeps the KL of disjoint sets finite
MAX_KL = float(-np.log(DENSITY_FLOOR))  # KL cap (nats), the value for disjoint sets


# --- per-piece features -------------------------------------------------------------------------

def length_beats(piece: Piece) -> float:
    """The piece's length in beats: its end rounded up to the next bar line.

    Bar lines are `piece.bar_starts`, continued past the last one at the last bar's length (4
    beats when a single bar line is known). An empty piece has length 0.
    """
    return float(bar_bounds(piece)[-1]) if piece.end > 0 else 0.0


def _sounding(piece: Piece, steps_per_quarter: int) -> np.ndarray:
    """Number of notes sounding at each grid step, over the piece's length (`length_beats`)."""
    onset, length = quantize(piece, steps_per_quarter)
    steps = int(np.ceil(length_beats(piece) * steps_per_quarter - 1e-9))
    steps = max(steps, int((onset + length).max()) if len(onset) else 0)
    delta = np.bincount(onset, minlength=steps + 1) - np.bincount(onset + length,
                                                                  minlength=steps + 1)
    return np.cumsum(delta)[:steps]


def pitch_class_histogram(piece: Piece) -> np.ndarray:
    """Share of notes per pitch class (C first), by note count; zeros for an empty piece."""
    counts = np.bincount(piece.pitch.astype(np.int64) % 12, minlength=12).astype(np.float64)
    return counts / max(len(piece), 1)


def pitch_range(piece: Piece) -> int:
    """Highest minus lowest MIDI pitch; 0 for an empty piece."""
    return int(piece.pitch.max() - piece.pitch.min()) if len(piece) else 0


def used_pitches(piece: Piece) -> int:
    """Number of distinct MIDI pitches."""
    return int(len(np.unique(piece.pitch)))


def polyphony(piece: Piece, steps_per_quarter: int = 4) -> float:
    """Mean number of notes sounding over the grid steps where at least one sounds (0 if none)."""
    sounding = _sounding(piece, steps_per_quarter)
    sounding = sounding[sounding > 0]
    return float(sounding.mean()) if len(sounding) else 0.0


def note_density(piece: Piece) -> float:
    """Notes per beat over the piece's length (`length_beats`); 0 for an empty piece."""
    beats = length_beats(piece)
    return len(piece) / beats if beats > 0 else 0.0


def inter_onset_intervals(piece: Piece) -> np.ndarray:
    """Differences between distinct successive onsets, in beats (empty below two onsets)."""
    return np.diff(np.unique(np.round(piece.start, 6)))


def note_length_histogram(piece: Piece) -> np.ndarray:
    """Share of notes per class of `NOTE_LENGTHS` (nearest class, mgeval's order)."""
    classes = np.abs(piece.duration[:, None] - np.asarray(NOTE_LENGTHS)[None, :]).argmin(axis=1)
    return np.bincount(classes, minlength=len(NOTE_LENGTHS)) / max(len(piece), 1)


def scale_consistency(piece: Piece) -> float:
    """Largest share of notes inside one of the 24 major / natural-minor scales (0 if empty)."""
    histogram = pitch_class_histogram(piece)
    shares = [histogram[[(tonic + step) % 12 for step in scale]].sum()
              for tonic in range(12) for scale in (MAJOR, MINOR)]
    return float(max(shares))


def pitch_class_entropy(piece: Piece) -> float:
    """Shannon entropy in bits of the pitch-class histogram (0 for an empty piece)."""
    shares = pitch_class_histogram(piece)
    shares = shares[shares > 0]
    return float(-(shares * np.log2(shares)).sum()) + 0.0


def empty_beat_rate(piece: Piece, steps_per_quarter: int = 4) -> float:
    """Share of beats (quarter notes) where no note sounds on the grid; 1.0 for an empty piece."""
    sounding = _sounding(piece, steps_per_quarter) > 0
    if not len(sounding):
        return 1.0
    beats = np.pad(sounding, (0, -len(sounding) % steps_per_quarter)).reshape(-1, steps_per_quarter)
    return float(1.0 - beats.any(axis=1).mean())


def groove_consistency(piece: Piece, beats_per_bar: float = 4, steps_per_quarter: int = 4) -> float:
    """MusPy's groove consistency: 1 - mean Hamming distance between adjacent bars' onset patterns.

    Bars are `beats_per_bar` long from time 0; a pattern marks the grid steps with an onset and
    the distance is the share of steps that differ. Below two bars it is 1.0 (nothing differs).
    """
    onset, _ = quantize(piece, steps_per_quarter)
    bar_steps = max(int(round(beats_per_bar * steps_per_quarter)), 1)
    bars = int(np.ceil(len(_sounding(piece, steps_per_quarter)) / bar_steps))  # covers every onset
    if bars < 2:
        return 1.0
    patterns = np.zeros(bars * bar_steps, bool)
    patterns[onset] = True
    patterns = patterns.reshape(bars, bar_steps)
    return float(1.0 - (patterns[1:] != patterns[:-1]).mean())


def features(piece: Piece, steps_per_quarter: int = 4, beats_per_bar: float = 4) -> dict:
    """All `FEATURES` of one piece: name -> float or float64 array of shape `FEATURES[name]`.

    The inter-onset intervals count as their mean (mgeval's avg_IOI), 0 below two onsets.
    """
    intervals = inter_onset_intervals(piece)
    return {
        "pitch_class_histogram": pitch_class_histogram(piece),
        "note_length_histogram": note_length_histogram(piece),
        "pitch_range": float(pitch_range(piece)),
        "used_pitches": float(used_pitches(piece)),
        "polyphony": polyphony(piece, steps_per_quarter),
        "note_density": note_density(piece),
        "mean_inter_onset_interval": float(intervals.mean()) if len(intervals) else 0.0,
        "scale_consistency": scale_consistency(piece),
        "pitch_class_entropy": pitch_class_entropy(piece),
        "empty_beat_rate": empty_beat_rate(piece, steps_per_quarter),
        "groove_consistency": groove_consistency(piece, beats_per_bar, steps_per_quarter),
    }


# --- mgeval set comparison ----------------------------------------------------------------------

def _pairwise(a, b) -> np.ndarray:
    """[len(a), len(b)] Euclidean distances; a feature per piece, scalars or vectors."""
    a, b = (np.asarray(v, np.float64).reshape(len(v), -1) for v in (a, b))
    return np.linalg.norm(a[:, None] - b[None, :], axis=-1)


def intra_set_distances(values) -> np.ndarray:
    """Distances between all ordered pairs i != j of a set (mgeval's leave-one-out): n * (n - 1)
    values, each pair twice, none below two pieces. `values`: [n] scalars or [n, d] vectors."""
    return _pairwise(values, values)[~np.eye(len(values), dtype=bool)]


def inter_set_distances(a, b) -> np.ndarray:
    """Distances between every piece of `a` and every piece of `b` (len(a) * len(b) values)."""
    return _pairwise(a, b).ravel()


def _sample(x) -> np.ndarray:
    x = np.asarray(x, np.float64).ravel()
    if not len(x) or not np.isfinite(x).all():
        raise ValueError("a KDE needs a non-empty sample of finite values")
    return x


def _bandwidth(x: np.ndarray) -> float:
    """Scott's rule (as scipy.stats.gaussian_kde); 0 for one value or (numerically) no spread."""
    std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return std * len(x) ** -0.2 if std > 1e-12 * max(1.0, float(np.abs(x).max())) else 0.0


def _kde(x: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian KDE of `x` with this bandwidth on an even grid, normalised to integrate to 1 on
    the grid (scipy's gaussian_kde needs a sample with spread; this one may borrow it)."""
    density = stats.norm.pdf(grid[:, None], loc=x[None], scale=bandwidth).mean(axis=1)
    return density / (density.sum() * (grid[1] - grid[0]))


def _densities(x, y):
    """Both KDEs on one grid as (step, p, q); (None, same constant?, None) when both samples are
    constants. A sample without spread borrows the other sample's bandwidth."""
    x, y = _sample(x), _sample(y)
    bx, by = _bandwidth(x), _bandwidth(y)
    if bx == by == 0.0:
        return None, bool(np.isclose(x[0], y[0], rtol=1e-9, atol=1e-12)), None
    bx, by = bx or by, by or bx
    pad = 6 * max(bx, by)
    grid = np.linspace(min(x.min(), y.min()) - pad, max(x.max(), y.max()) + pad, KDE_GRID)
    return grid[1] - grid[0], _kde(x, grid, bx), _kde(y, grid, by)


def kde_overlap(x, y) -> float:
    """Overlapping area of the Gaussian KDEs (Scott's rule) of two samples, in [0, 1].

    Identical samples give 1.0. Two samples without spread give 1.0 for the same constant and
    0.0 for different ones. Raises ValueError for an empty sample.
    """
    step, p, q = _densities(x, y)
    if step is None:
        return 1.0 if p else 0.0
    return float(np.clip(np.minimum(p, q).sum() * step, 0.0, 1.0))


def kde_kl(x, y) -> float:
    """KL divergence KL(p_x || p_y) in nats of the two samples' Gaussian KDEs, in [0, MAX_KL].

    q is floored at DENSITY_FLOOR of its peak, so disjoint samples give about MAX_KL instead of
    infinity. Two samples without spread give 0.0 for the same constant and MAX_KL otherwise.
    Raises ValueError for an empty sample.
    """
    step, p, q = _densities(x, y)
    if step is None:
        return 0.0 if p else MAX_KL
    q = np.maximum(q, DENSITY_FLOOR * q.max())
    inside = p > 0
    kl = float((p[inside] * np.log(p[inside] / q[inside])).sum() * step)
    return float(np.clip(kl, 0.0, MAX_KL))


def _stats(d: np.ndarray) -> dict:
    """Mean and std of distances; both None when there are none (a set of one piece)."""
    mean, std = (float(d.mean()), float(d.std())) if len(d) else (None, None)
    return {"mean": mean, "std": std, "pairs": int(len(d))}


def compare_sets(generated: list[Piece], reference: list[Piece], steps_per_quarter: int = 4,
                 beats_per_bar: float = 4) -> dict:
    """mgeval's protocol (Yang & Lerch 2018) on every feature of `FEATURES`.

    Per feature: distance stats within each set and across them, and the overlap and KL of the
    reference's intra-set distances against the inter-set distances (1 and 0 at best).

    Returns:
        {feature: {"intra_reference", "intra_generated", "inter": {"mean", "std", "pairs"},
        "overlap": float, "kl": float}, ..., "overlap_mean": mean overlap over the features}.
        With one generated piece, its intra-set mean and std are None. A feature of one number
        per piece also keeps each piece's, in order: "generated" and "reference" lists (which
        samples pull an overlap down).

    Raises:
        InputError: fewer than two reference pieces or no generated piece.
    """
    if len(reference) < 2 or not generated:
        raise InputError(f"compare_sets needs >= 2 reference pieces and >= 1 generated piece "
                         f"(got {len(reference)} and {len(generated)})")
    ref = [features(p, steps_per_quarter, beats_per_bar) for p in reference]
    gen = [features(p, steps_per_quarter, beats_per_bar) for p in generated]
    result = {}
    for name in FEATURES:
        a, b = [f[name] for f in ref], [f[name] for f in gen]
        intra_ref, inter = intra_set_distances(a), inter_set_distances(a, b)
        result[name] = {"intra_reference": _stats(intra_ref),
                        "intra_generated": _stats(intra_set_distances(b)),
                        "inter": _stats(inter), "overlap": kde_overlap(intra_ref, inter),
                        "kl": kde_kl(intra_ref, inter)}
        if not FEATURES[name]:
            result[name].update(generated=[float(v) for v in b], reference=[float(v) for v in a])
    result["overlap_mean"] = float(np.mean([result[name]["overlap"] for name in FEATURES]))
    return result


# --- degeneracy ---------------------------------------------------------------------------------

def most_common_share(tokens) -> float:
    """Share of the most frequent token among all tokens; 0.0 for no tokens."""
    tokens = list(tokens)
    return collections.Counter(tokens).most_common(1)[0][1] / len(tokens) if tokens else 0.0


def longest_repeat(tokens) -> int:
    """Length of the longest run of one token repeated back to back (0 for no tokens)."""
    return max((sum(1 for _ in run) for _, run in itertools.groupby(tokens)), default=0)


def voice_motion(piece: Piece, steps_per_quarter: int = 4) -> float | None:
    """How far the outer voices move per grid step: the mean over steps, where something sounds
    on the step and the one before, of the semitones the highest and the lowest sounding pitch
    move, averaged over the two (None where no two successive steps sound). Voices that hold
    or move by step keep it low (the chorales' soprano 1.8, bass 3.3 on a quarter-note grid);
    keys drawn with no voice carried on from one step to the next, 2.5-3x that (QUALITY.md)."""
    if not len(piece):
        return None
    onset, length = quantize(piece, steps_per_quarter)
    length = np.maximum(length, 1)
    # every (note, step it sounds on): its onset, onset + 1, ..., onset + length - 1
    note = np.repeat(np.arange(len(piece)), length)
    within = np.arange(len(note)) - np.repeat(np.cumsum(length) - length, length)
    step = onset[note] + within
    top = np.full(step.max() + 1, -1)
    bottom = np.full(step.max() + 1, 128)
    np.maximum.at(top, step, piece.pitch[note])
    np.minimum.at(bottom, step, piece.pitch[note])
    both = (top[1:] >= 0) & (top[:-1] >= 0)
    if not both.any():
        return None
    moves = np.abs(np.diff(top))[both] + np.abs(np.diff(bottom))[both]
    return float(moves.mean() / 2)


def silent_step_share(piece: Piece, steps_per_quarter: int = 4) -> float:
    """Share of grid steps over the piece's length (`length_beats`) where nothing sounds; 1.0 for
    an empty piece."""
    sounding = _sounding(piece, steps_per_quarter)
    return float((sounding == 0).mean()) if len(sounding) else 1.0


# --- copying ------------------------------------------------------------------------------------

_HASH_BASE = 0x100000001B3  # odd, so invertible modulo 2**64
_HASH_MIX = np.uint64(0x9E3779B97F4A7C15)


def _geometric(base: int, count: int) -> np.ndarray:
    """base**0 .. base**(count - 1) modulo 2**64."""
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(count, base, np.uint64), dtype=np.uint64)
    return np.concatenate([np.ones(1, np.uint64), powers[:-1]])[:count]


def _prefix_hashes(ids: list[int]) -> np.ndarray:
    """prefix[k] = sum over j < k of mix(id_j) * B**-j modulo 2**64."""
    with np.errstate(over="ignore"):
        mixed = (np.asarray(ids, np.uint64) + np.uint64(1)) * _HASH_MIX
        terms = mixed * _geometric(pow(_HASH_BASE, -1, 2**64), len(ids))
        return np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])


def _windows(prefix: np.ndarray, length: int) -> np.ndarray:
    """Hashes of all windows [s, s + length): (prefix[s + length] - prefix[s]) * B**s."""
    count = len(prefix) - length
    if length <= 0 or count <= 0:
        return np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        return (prefix[length:] - prefix[:count]) * _geometric(_HASH_BASE, count)


def _found(needles: np.ndarray, haystack: np.ndarray) -> np.ndarray:
    """needles in haystack, elementwise (faster than np.isin here)."""
    haystack = np.sort(haystack)
    if not len(haystack):
        return np.zeros(len(needles), bool)
    at = np.minimum(np.searchsorted(haystack, needles), len(haystack) - 1)
    return haystack[at] == needles


def _prefixes(generated_tokens, training_sequences) -> tuple[np.ndarray, np.ndarray]:
    """Prefix hashes of the generated tokens and of the training sequences joined by a separator
    that no generated token equals, so no match crosses two sequences."""
    ids: dict = {}
    generated = [ids.setdefault(t, len(ids)) for t in generated_tokens]
    separator = ids.setdefault(object(), len(ids))
    training = []
    for sequence in training_sequences:
        training.extend(ids.setdefault(t, len(ids)) for t in sequence)
        training.append(separator)
    return _prefix_hashes(generated), _prefix_hashes(training)


def longest_copied_run(generated_tokens, training_sequences) -> int:
    """Length of the longest run of consecutive generated tokens found contiguously in one training
    sequence (rolling hash and binary search over the length: O((n + m) log n))."""
    generated, training = _prefixes(generated_tokens, training_sequences)
    low, high = 0, len(generated) - 1  # the answer lies in [low, high]
    while low < high:
        length = (low + high + 1) // 2
        if _found(_windows(generated, length), _windows(training, length)).any():
            low = length
        else:
            high = length - 1
    return low


def ngram_overlap(generated_tokens, training_sequences, n: int = 8) -> float:
    """Share of the generated n-grams (every position, repeats included) found in a training
    sequence; 0.0 when there are fewer than `n` generated tokens."""
    generated, training = _prefixes(generated_tokens, training_sequences)
    grams = _windows(generated, n)
    return float(_found(grams, _windows(training, n)).mean()) if len(grams) else 0.0


# --- drift --------------------------------------------------------------------------------------

DRIFT_FEATURES = ("pitch", "duration")
DURATION_RESOLUTION = 1e-3  # quarters: durations are counted at this resolution


def note_distributions(pieces: list[Piece]) -> dict:
    """Every note's pitch and duration (quarters) in a set, as counts of each distinct value:
    {"pitch": {"values": [...], "counts": [...]}, "duration": {...}}, plain lists (JSON). The
    compact form an export keeps of its training data: its W1 to another set is the notes'
    own, durations rounded to `DURATION_RESOLUTION`."""
    out = {}
    for key in DRIFT_FEATURES:
        x = np.concatenate([np.asarray(getattr(p, key), np.float64) for p in pieces]
                           + [np.zeros(0)])
        if key == "duration":
            x = np.round(x / DURATION_RESOLUTION) * DURATION_RESOLUTION
        values, counts = np.unique(x[np.isfinite(x)], return_counts=True)
        out[key] = {"values": values.tolist(), "counts": counts.tolist()}
    return out


def distribution_drift(reference: dict, produced: dict) -> dict:
    """W1 between two `note_distributions`, per feature: {"pitch": float, "duration": float},
    a feature None where either side has no notes."""
    out = {}
    for key in DRIFT_FEATURES:
        a, b = reference[key], produced[key]
        out[key] = float(stats.wasserstein_distance(a["values"], b["values"], a["counts"],
                                                    b["counts"])) \
            if sum(a["counts"]) and sum(b["counts"]) else None
    return out


def drift(reference: list[Piece], produced: list[Piece]) -> dict:
    """W1 between all note pitches and between all note durations (quarters) of two sets:
    {"pitch": float, "duration": float}, both None when either set has no notes."""
    return distribution_drift(note_distributions(reference), note_distributions(produced))
