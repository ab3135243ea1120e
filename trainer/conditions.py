"""Condition vectors for conditional generation (the conditional Char-RNN seed, Performance RNN).

A condition says what a stretch of music is like, in `SIZE` numbers that a conditional model
reads at every step; training learns them from each window, generation takes them from the
primer, and a user may override the key and the density:

- 0-11: pitch-class histogram (shares of note onsets), i.e. the key;
- 12, 13: lowest and highest pitch / 127, i.e. the range;
- 14: note density: note events (notes) or onset steps (piano roll) per grid step, at most 1.

One TensorFlow implementation serves both sides: training runs it eagerly over its windows, the
exported signatures run it in the graph over the request's primer.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from preprocessing import pianoroll
from preprocessing.piece import PITCH_NAMES
from preprocessing.transforms import KEY_PROFILES

SIZE = 15
DENSITY = 14
# the model reads conditions standardised to about unit spread: histogram shares around 1/12,
# pitches around the middle of the keyboard, densities around 0.5
CENTER = np.asarray([1 / 12] * 12 + [0.35, 0.6, 0.5], np.float32)
SCALE = np.asarray([12.0] * 12 + [10.0, 10.0, 4.0], np.float32)


def standardized(condition):
    """What a conditional model reads of a condition [..., SIZE] (Keras or TF tensors)."""
    return (condition - CENTER) * SCALE


def _vector(counts, low, high, density):
    total = tf.reduce_sum(counts, -1, keepdims=True)
    hist = counts / tf.maximum(total, 1.0)
    some = high >= 0
    low = tf.where(some, low, 0.0) / 127.0
    high = tf.where(some, high, 0.0) / 127.0
    return tf.concat([hist, low[:, None], high[:, None],
                      tf.minimum(density, 1.0)[:, None]], -1)


def pitch_table() -> tf.lookup.StaticHashTable:
    """Pitch name → MIDI pitch (-1 for anything else), for `from_tokens`."""
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        list(PITCH_NAMES), list(range(len(PITCH_NAMES)))), -1)


def from_tokens(tokens, shifts, valid, table):
    """Conditions [B, SIZE] of events given as token strings [B, T] ("C4.E4.G4", "R", ...) and
    shifts [B, T] (grid steps), where `valid`; `table` from `pitch_table`. Tokens are read by
    their pitch names, so a chord the model's vocabulary does not hold still counts. The density
    counts onsets: sounding events that follow a shift (or padding, or nothing), the first of
    the notes that start together (one event per chord class, or one per note of a split
    chord)."""
    batch, length = tf.shape(tokens)[0], tf.shape(tokens)[1]
    # every note name of every event, flat, with its event's index (row * length + step): dense
    # segment sums trace in a fraction of the time ragged reductions take
    names = tf.strings.split(tf.reshape(tf.where(valid, tokens, ""), [-1]), ".")
    event = tf.cast(names.value_rowids(), tf.int32)
    row = event // length
    pitch = table.lookup(names.flat_values)
    known = pitch >= 0
    counts = tf.math.unsorted_segment_sum(
        tf.one_hot(pitch % 12, 12) * tf.cast(known, tf.float32)[:, None], row, batch)
    as_float = tf.cast(pitch, tf.float32)
    # a row without a known note: its segment's extreme clipped to 128 / -1
    low = tf.minimum(tf.math.unsorted_segment_min(tf.where(known, as_float, 128.0), row, batch),
                     128.0)
    high = tf.maximum(tf.math.unsorted_segment_max(tf.where(known, as_float, -1.0), row, batch),
                      -1.0)
    sounding = tf.reshape(tf.math.unsorted_segment_max(
        tf.cast(known, tf.float32), event, batch * length), [batch, length]) > 0
    boundary = tf.where(valid, tf.cast(shifts, tf.float32), 1.0)  # padding ends a group too
    after = tf.concat([tf.ones_like(boundary[:, :1]), boundary[:, :-1]], 1) > 0
    events = tf.reduce_sum(tf.cast(sounding & after, tf.float32), 1)
    steps = tf.reduce_sum(tf.where(valid, tf.cast(shifts, tf.float32), 0.0), 1)
    return _vector(counts, low, high, events / tf.maximum(steps, 1.0))


def from_frames(frames):
    """Conditions [B, SIZE] of piano-roll frames [B, T, 88] (active) or [B, T, 176]
    (onset-sustain: onsets, then holds)."""
    keys = pianoroll.KEYS
    frames = tf.convert_to_tensor(frames, tf.float32)
    if frames.shape[-1] == 2 * keys:
        onsets, active = frames[..., :keys], tf.maximum(frames[..., :keys], frames[..., keys:])
    else:
        before = tf.concat([tf.zeros_like(frames[:, :1]), frames[:, :-1]], 1)
        onsets, active = tf.nn.relu(frames - before), frames
    pitch_class = np.eye(12, dtype=np.float32)[(np.arange(keys) + pianoroll.LOWEST) % 12]
    counts = tf.reduce_sum(onsets, 1) @ pitch_class
    pitch = tf.range(keys, dtype=tf.float32) + pianoroll.LOWEST
    sounding = tf.reduce_max(active, 1) > 0
    low = tf.reduce_min(tf.where(sounding, pitch, 128.0), -1)
    high = tf.reduce_max(tf.where(sounding, pitch, -1.0), -1)
    density = tf.reduce_mean(tf.cast(tf.reduce_max(onsets, -1) > 0, tf.float32), -1)
    return _vector(counts, low, high, density)


def of_windows(x, representation: str, tokens=None, batch: int = 4096) -> np.ndarray:
    """Conditions of training windows (NumPy [N, T, ...] → [N, SIZE]), in batches."""
    if representation == "notes":
        names, table = np.asarray(tokens, object), pitch_table()

        def condition(chunk):
            return from_tokens(names[chunk[..., 0]], chunk[..., 2],
                               tf.ones(chunk.shape[:2], tf.bool), table)
    else:
        condition = from_frames
    out = [condition(x[i:i + batch]).numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, SIZE), np.float32)


def of_inputs(x) -> np.ndarray | None:
    """The condition vectors [N, SIZE] of a family's training inputs (`Family.arrays`), which
    a conditional model's export turns into key profiles; None for an unconditional model."""
    return x.get("condition") if isinstance(x, dict) else None


def key_profiles(conditions: np.ndarray) -> np.ndarray:
    """The typical pitch-class histogram of a major and of a minor key, tonic first ([2, 12]),
    learned from training conditions: each histogram's key is found (Krumhansl-Schmuckler) and
    the histogram turned to that tonic before averaging. Where the data holds no window of a
    mode, the Krumhansl-Kessler profile stands in."""
    hists = np.asarray(conditions, np.float64)[:, :12]
    hists = hists[hists.sum(1) > 0]
    out = KEY_PROFILES[:, 0] / KEY_PROFILES[:, 0].sum(1, keepdims=True)
    if not len(hists):
        return out.astype(np.float32)
    centred = hists - hists.mean(1, keepdims=True)
    profiles = KEY_PROFILES.reshape(24, 12)
    profiles = profiles - profiles.mean(1, keepdims=True)
    scores = (centred @ profiles.T) / (np.linalg.norm(centred, axis=1, keepdims=True)
                                       * np.linalg.norm(profiles, axis=1) + 1e-12)
    best = scores.argmax(1)
    mode, tonic = best // 12, best % 12
    turned = np.stack([np.roll(h, -t) for h, t in zip(hists, tonic)])
    for m in (0, 1):
        if (mode == m).any():
            out[m] = turned[mode == m].mean(0)
    return (out / out.sum(1, keepdims=True)).astype(np.float32)


def override(condition, key, density, profiles):
    """Per row: the key's learned histogram where `key` (index, -1 keeps the row's own) and
    `density` where >= 0.

    Args:
        condition: [B, SIZE]; key: [B] int32 (tonic + 12 * minor, or -1); density: [B] float.
        profiles: [2, 12] from `key_profiles`.
    """
    tonic = tf.maximum(key, 0) % 12
    base = tf.gather(tf.constant(profiles), tf.maximum(key, 0) // 12)  # [B, 12]
    turned = tf.gather(base, (tf.range(12)[None] - tonic[:, None]) % 12, batch_dims=1)
    hist = tf.where(key[:, None] >= 0, turned, condition[:, :12])
    dens = tf.where(density >= 0, tf.minimum(density, 1.0), condition[:, DENSITY])
    return tf.concat([hist, condition[:, 12:DENSITY], dens[:, None]], -1)
