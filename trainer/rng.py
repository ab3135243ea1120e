"""A counter-based random generator, per batch row, in TensorFlow and (identically) in NumPy.

TensorFlow's stateless ops take one seed per call, so two requests that TF Serving batches
together would share their random numbers, and a request's output would depend on its
neighbours. Here every number is a hash of (row seed, step, stream, index): a row's draws
depend on its own seed only, in any batch, and the NumPy twin reproduces them exactly, which
is how the in-graph loop is checked against a step-by-step Python reference.
"""

from __future__ import annotations

import numpy as np

_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32 (C. Wellons), a well-mixing 32-bit hash
_STEP, _STREAM = 0x9E3779B9, 0x85EBCA6B


def _hash_np(x):
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(_M1)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(_M2)
    return x ^ (x >> np.uint32(16))


def uniform_np(seed, step: int, stream: int, size: int) -> np.ndarray:
    """Uniforms in (0, 1) as float32 [len(seed), size], for row seeds `seed` (int64)."""
    seed = np.asarray(seed, np.int64)
    with np.errstate(over="ignore"):
        base = _hash_np((seed & 0xFFFFFFFF).astype(np.uint32)
                        ^ _hash_np((seed >> 32).astype(np.uint32)))
        base = _hash_np(base ^ np.uint32((step * _STEP + stream * _STREAM) & 0xFFFFFFFF))
        bits = _hash_np(base[:, None] ^ _hash_np(np.arange(size, dtype=np.uint32))[None])
    return np.clip(((bits.astype(np.float64) + 0.5) / 2.0**32).astype(np.float32), _LOW, _HIGH)


_LOW, _HIGH = np.float32(1e-7), np.float32(1 - 1e-7)  # float32 rounds the extremes to 0 and 1


def _hash_tf(x):
    import tensorflow as tf

    shift = tf.bitwise.right_shift
    x = tf.bitwise.bitwise_xor(x, shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(_M1, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, shift(x, tf.constant(15, tf.uint32)))
    x = x * tf.constant(_M2, tf.uint32)
    return tf.bitwise.bitwise_xor(x, shift(x, tf.constant(16, tf.uint32)))


def uniform_tf(seed, step, stream: int, size):
    """`uniform_np` in TensorFlow: seed int64 [B], step int32 scalar → float32 [B, size]."""
    import tensorflow as tf

    seed = tf.cast(seed, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(seed, 0xFFFFFFFF), tf.uint32)
    high = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(seed, 32), 0xFFFFFFFF),
                   tf.uint32)
    base = _hash_tf(tf.bitwise.bitwise_xor(low, _hash_tf(high)))
    counter = tf.cast(tf.bitwise.bitwise_and(
        tf.cast(step, tf.int64) * _STEP + stream * _STREAM, 0xFFFFFFFF), tf.uint32)
    base = _hash_tf(tf.bitwise.bitwise_xor(base, counter))
    index = _hash_tf(tf.cast(tf.range(size), tf.uint32))
    bits = _hash_tf(tf.bitwise.bitwise_xor(base[:, None], index[None]))
    uniform = tf.cast((tf.cast(bits, tf.float64) + 0.5) / 2.0**32, tf.float32)
    return tf.clip_by_value(uniform, _LOW, _HIGH)


def normal_np(seed, step: int, stream: int, size: int) -> np.ndarray:
    """Standard normals (Box-Muller over two uniform streams), float32 [len(seed), size]."""
    u1 = uniform_np(seed, step, 2 * stream, size)
    u2 = uniform_np(seed, step, 2 * stream + 1, size)
    return (np.sqrt(-2 * np.log(u1)) * np.cos(np.float32(2 * np.pi) * u2)).astype(np.float32)


def normal_tf(seed, step, stream: int, size):
    """`normal_np` in TensorFlow."""
    import tensorflow as tf

    u1 = uniform_tf(seed, step, 2 * stream, size)
    u2 = uniform_tf(seed, step, 2 * stream + 1, size)
    return tf.sqrt(-2 * tf.math.log(u1)) * tf.cos(np.float32(2 * np.pi) * u2)
