"""A NADE over a frame's keys (low to high) whose biases come from a recurrent state
(Boulanger-Lewandowski, Bengio, Vincent, ICML 2012): the joint frame head of `rnn_nade`, of
`seq2seq` (its default head) and of the `vae`'s `head=nade`.

NADE: h_k = sigmoid(c + W[:, :k] v_<k), p(v_k = 1 | v_<k) = sigmoid(b_k + V_k . h_k), with b
[keys] and c [hidden] from the recurrent state and W, V shared. Teacher-forced, every key's
conditional is computed at once (`NADE`), so a frame's exact NLL is the sum over keys of their
binary cross-entropies (`nade_nll`); composing draws the keys one by one (`draw_keys` in the
graph, `draw_frame` its NumPy twin).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable("composer")
class NADE(keras.layers.Layer):
    """Teacher-forced NADE conditionals: [b [.., K], c [.., H], v [.., K]] → logits [.., K] of
    p(v_k = 1 | v_<k), every key at once."""

    def __init__(self, hidden: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden

    def build(self, input_shape):
        keys = input_shape[0][-1]
        self.W = self.add_weight(shape=(self.hidden, keys), initializer="glorot_uniform",
                                 name="W")
        self.V = self.add_weight(shape=(keys, self.hidden), initializer="glorot_uniform",
                                 name="V")

    def call(self, inputs):
        b, c, v = inputs
        keys = ops.shape(self.V)[0]
        below = ops.tril(ops.ones((keys, keys), v.dtype), -1)  # [k, j]: 1 where j < k
        # a_k = c + W[:, :k] v_<k for every k at once: a matmul (faster than a cumsum on CPUs)
        a = c[..., None, :] + ops.matmul(v[..., None, :] * below, ops.transpose(self.W))
        return b + ops.sum(ops.sigmoid(a) * self.V, axis=-1)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden}


@keras.saving.register_keras_serializable("composer")
def nade_nll(y_true, y_pred):
    """Exact NLL in nats per frame (summed over keys), averaged over the frames that are not
    padding (targets `data.PAD`)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    real = ops.cast(y_true[..., 0] >= 0, y_pred.dtype)
    nll = ops.sum(ops.binary_crossentropy(ops.maximum(y_true, 0.0), y_pred, from_logits=True),
                  axis=-1)
    return ops.sum(nll * real) / ops.maximum(ops.sum(real), 1.0)


CUSTOM_OBJECTS = {"NADE": NADE, "nade_nll": nade_nll}


def draw_frame(b, c, W, V, temperature: float, threshold: float, u) -> np.ndarray:
    """One frame in NumPy, key by key: b [K], c [H], W [H, K], V [K, H], uniforms u [K]."""
    a, v = np.asarray(c, np.float32).copy(), np.zeros(len(b), np.float32)
    for k in range(len(b)):
        h = 1 / (1 + np.exp(-a))
        p = 1 / (1 + np.exp(-(b[k] + np.sum(h * V[k])) / np.float32(temperature)))
        v[k] = (np.float32(threshold) if threshold > 0 else u[k]) < p
        a = a + W[:, k] * v[k]
    return v


def split_weights(layer: NADE) -> tuple[list, list]:
    """The NADE's W columns and V rows, one [1, H] tensor a key, for `draw_keys` (split once in
    the graph, outside its loop)."""
    keys = layer.V.shape[0]
    return (tf.split(tf.transpose(layer.W), keys),  # W[:, k] as [1, H]
            tf.split(tf.convert_to_tensor(layer.V), keys))


def draw_keys(b, c, temperature, threshold, u, weights):
    """(frame [B, K], probs [B, K]) from the NADE, key by key (unrolled; per key one update of
    a, no matmul): a key is on where its probability given the keys below it (at
    `temperature` [B]) passes its uniform draw u [B, K], or, for rows whose `threshold` [B] is
    > 0, that threshold. Keys stay [B, 1]: fewer ops to build and run. weights:
    `split_weights`."""
    columns, rows = weights
    cut = tf.where(threshold[:, None] > 0, threshold[:, None], u)
    temperature = temperature[:, None]
    a, keys, probs, last = c, [], [], tf.constant(-1)
    for b_k, cut_k, w_k, v_k in zip(tf.split(b, len(rows), 1), tf.split(cut, len(rows), 1),
                                    columns, rows):
        p = tf.sigmoid((b_k + tf.reduce_sum(tf.sigmoid(a) * v_k, last, keepdims=True))
                       / temperature)
        on = tf.cast(cut_k < p, tf.float32)
        a = a + w_k * on
        keys.append(on)
        probs.append(p)
    return tf.concat(keys, 1), tf.concat(probs, 1)
