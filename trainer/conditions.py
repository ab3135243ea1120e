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

from preprocessing import notes, pianoroll
from preprocessing.transforms import KEY_PROFILES

SIZE = 15
DENSITY = 14


def token_table(tokens) -> np.ndarray:
    """Per vocabulary token: pitch-class counts (12), lowest and highest pitch (128 / -1 for
    rests and unknown tokens)."""
    table = np.zeros((len(tokens), 14), np.float32)
    table[:, 12], table[:, 13] = 128, -1
    for i, token in enumerate(tokens):
        pitches = notes.token_pitches(token)
        if pitches:
            np.add.at(table[i], np.asarray(pitches) % 12, 1)
            table[i, 12], table[i, 13] = min(pitches), max(pitches)
    return table


def _vector(counts, low, high, density):
    total = tf.reduce_sum(counts, -1, keepdims=True)
    hist = counts / tf.maximum(total, 1.0)
    some = high >= 0
    low = tf.where(some, low, 0.0) / 127.0
    high = tf.where(some, high, 0.0) / 127.0
    return tf.concat([hist, low[:, None], high[:, None],
                      tf.minimum(density, 1.0)[:, None]], -1)


def from_events(ids, valid, table):
    """Conditions [B, SIZE] of event ids [B, T, 3] (token, duration, shift), where `valid`."""
    stats = tf.gather(tf.constant(table), ids[..., 0])
    on = tf.cast(valid, tf.float32)[..., None]
    counts = tf.reduce_sum(stats[..., :12] * on, 1)
    low = tf.reduce_min(tf.where(valid, stats[..., 12], 128.0), 1)
    high = tf.reduce_max(tf.where(valid, stats[..., 13], -1.0), 1)
    events = tf.reduce_sum(tf.cast(valid & (stats[..., 13] >= 0), tf.float32), 1)
    steps = tf.reduce_sum(tf.where(valid, tf.cast(ids[..., 2], tf.float32), 0.0), 1)
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
    out = []
    table = token_table(tokens) if representation == "notes" else None
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        out.append((from_events(chunk, tf.ones(chunk.shape[:2], tf.bool), table)
                    if representation == "notes" else from_frames(chunk)).numpy())
    return np.concatenate(out) if out else np.zeros((0, SIZE), np.float32)


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
