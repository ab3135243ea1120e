"""In-graph generation shared by the families: draws, and next-step decoders that run trained
models one step at a time inside a TensorFlow loop.

Recurrent layers run their cells and carry (h, c); causal self-attention keeps the last
`attention_width` inputs it attends to; a model that reads whole windows re-reads a rolling
window. Draws use `rng` (per-row counter-based), so a row's output depends on its own seed only,
and `sampling` reproduces every draw in NumPy. A family with a loop of its own keeps it in its
module (`trainer/models/`).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras_self_attention import SeqSelfAttention

from trainer import conditions, rng
from trainer.data import NOTE_FIELDS, DataSpec
from trainer.sampling import BANNED, NEG


def categorical(logits, temperature, top_k, u, banned: int = 0):
    """One class per row: Gumbel-max over logits / temperature, within the row's top k (0: all).

    Args:
        logits: [B, V]; temperature: [B] (> 0); top_k: [B] int32; u: uniforms [B, V].
        banned: classes 0..banned-1 are never drawn.
    """
    logits = logits / temperature[:, None]
    if banned:
        logits = tf.concat([tf.fill([tf.shape(logits)[0], banned], NEG), logits[:, banned:]], 1)
    classes = tf.shape(logits)[1]

    def keep_top_k():
        k = tf.where(top_k > 0, tf.minimum(top_k, classes), classes)
        kth = tf.gather(tf.sort(logits, direction="DESCENDING"), k - 1, batch_dims=1)
        return tf.where(logits < kth[:, None], NEG, logits)

    logits = tf.cond(tf.reduce_any(top_k > 0), keep_top_k, lambda: logits)
    return tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=1, output_type=tf.int32)


def bernoulli(logits, temperature, threshold, u):
    """Frames: each key on with probability sigmoid(logit / temperature), or, for rows whose
    threshold is > 0, on where that probability passes it."""
    p = tf.sigmoid(logits / temperature[:, None])
    on = tf.where(threshold[:, None] > 0, p > threshold[:, None], u < p)
    return tf.cast(on, tf.float32)


def counted(logits, temperature, threshold, scale, u, u_count):
    """Frames with a calibrated number of keys on: n = floor(scale x the frame's expected count
    sum(sigmoid(logit / temperature)) + u_count), the n keys drawn without replacement in
    proportion to their odds exp(logit / temperature) (Gumbel top-n), so a frame sounds as many
    keys as the data's frames do while independent draws of miscalibrated probabilities would
    sound many more; rows whose threshold is > 0 keep the threshold rule.

    Args: logits [B, keys]; temperature, threshold, u_count: [B]; scale: a scalar; u [B, keys].
    """
    z = logits / temperature[:, None]
    p = tf.sigmoid(z)
    count = tf.floor(scale * tf.reduce_sum(p, -1) + u_count)
    rank = tf.argsort(tf.argsort(z - tf.math.log(-tf.math.log(u)), direction="DESCENDING",
                                 stable=True), stable=True)
    on = tf.where(threshold[:, None] > 0, p > threshold[:, None],
                  tf.cast(rank, tf.float32) < count[:, None])
    return tf.cast(on, tf.float32)


def _select(mask, new, old):
    """Per row: `new` where mask, else `old`, over matching structures of [B, ...] tensors."""
    def pick(n, o):
        m = tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(n) - 1], tf.int32)], 0))
        return tf.where(m, n, o)

    return tf.nest.map_structure(pick, new, old)


def disable_cudnn(model: keras.Model) -> None:
    """Keep Keras from baking CuDNN kernels into the graph when a GPU is visible at export, so
    the SavedModel serves on CPUs too (keras#18504)."""
    for layer in model._flatten_layers(include_self=False):
        if hasattr(layer, "use_cudnn"):
            layer.use_cudnn = False


class Recurrent(tf.Module):
    """One step of `lstm` / `attention_lstm` (either representation) from its trained layers."""

    def __init__(self, model: keras.Model, spec: DataSpec):
        super().__init__()
        self.model, self.notes = model, spec.representation == "notes"
        self.stack = [layer for layer in model.layers
                      if isinstance(layer, (keras.layers.LSTM, SeqSelfAttention))]
        self.dense = model.get_layer("dense")
        if self.notes:
            self.embeddings = [model.get_layer(f"{f}_embedding") for f in NOTE_FIELDS]
            self.heads = [model.get_layer(f) for f in NOTE_FIELDS]
        else:
            self.heads = [model.get_layer("frame")]

    def initial_state(self, batch, condition=None):
        """(the standardised condition, [B, SIZE] or [B, 0], then each layer's state)."""
        state, width = [], None
        for layer in self.stack:
            if isinstance(layer, keras.layers.LSTM):
                width = layer.units
                state.append((tf.zeros([batch, width]), tf.zeros([batch, width])))
            else:
                w = layer.attention_width
                state.append((tf.zeros([batch, w, width]), tf.zeros([batch, w, layer.units]),
                              tf.zeros([batch], tf.int32)))
        if condition is None:
            return tf.zeros([batch, 0]), state
        return conditions.standardized(condition), state

    def step(self, x, state):
        """x: an event [B, 3] or a frame [B, K] → (list of logits per head, new state)."""
        condition, state = state
        h = tf.concat([emb(x[:, i]) for i, emb in enumerate(self.embeddings)], -1) \
            if self.notes else x
        h = tf.concat([h, condition], -1)
        new = []
        for layer, s in zip(self.stack, state):
            if isinstance(layer, keras.layers.LSTM):
                h, (hh, cc) = layer.cell(h, list(s))
                new.append((hh, cc))
            else:
                h, s = _attend(layer, h, s)
                new.append(s)
        hidden = self.dense(tf.concat([h, condition], -1))  # conditional heads read it too
        return [head(hidden) for head in self.heads], (condition, new)

    def every_position(self, steps, condition=None):
        """What the model returns for every position of `steps` ([B, T, 3] events or [B, T, K]
        frames), in one pass that `step` would take T times: the logits per field (a dict,
        notes) or per key. Memory grows with T times the attention's width, where the Keras
        layer scores every pair of steps (a piece of 11,445 events asked for 33 GB)."""
        h = tf.concat([emb(steps[..., i]) for i, emb in enumerate(self.embeddings)], -1) \
            if self.notes else steps
        if condition is not None:
            scaled = conditions.standardized(condition)[:, None]
            scaled = tf.repeat(scaled, tf.shape(h)[1], axis=1)
            h = tf.concat([h, scaled], -1)
        for layer in self.stack:
            h = layer(h, training=False) if isinstance(layer, keras.layers.LSTM) \
                else _attend_band(layer, h)
        if condition is not None:
            h = tf.concat([h, scaled], -1)  # conditional heads read it too
        hidden = self.dense(h)
        logits = [head(hidden) for head in self.heads]
        return dict(zip(NOTE_FIELDS, logits)) if self.notes else logits[0]


def _attend_band(layer: SeqSelfAttention, x):
    """SeqSelfAttention (additive, history_only) over a whole sequence x [B, T, D]: each step
    reads itself and the `attention_width` - 1 steps before it, as `_attend` does for one."""
    width = layer.attention_width

    def band(t):  # [B, T, F] → [B, T, width, F]: the width steps up to each step, zeros before
        return tf.signal.frame(tf.pad(t, [[0, 0], [width - 1, 0], [0, 0]]), width, 1, axis=1)

    filled = tf.range(width)[None] >= width - 1 - tf.range(tf.shape(x)[1])[:, None]
    return _mix(layer, x, band(tf.matmul(x, layer.Wx)), band(x), filled)


def _attend(layer: SeqSelfAttention, x, state):
    """SeqSelfAttention (additive, history_only) for the newest step over the kept window."""
    values, keys, count = state
    values = tf.concat([values[:, 1:], x[:, None]], 1)
    keys = tf.concat([keys[:, 1:], tf.matmul(x, layer.Wx)[:, None]], 1)
    count = count + 1
    width = layer.attention_width
    filled = tf.range(width)[None] >= width - tf.minimum(count, width)[:, None]
    return _mix(layer, x, keys, values, filled), (values, keys, count)


def _mix(layer: SeqSelfAttention, x, keys, values, filled):
    """The layer's additive attention of the steps x [..., D] over their windows' keys
    [..., W, U] and values [..., W, D], the window's unfilled places (`filled` False) left out."""
    h = tf.tanh(tf.matmul(x, layer.Wt)[..., None, :] + keys + layer.bh)
    e = tf.squeeze(tf.matmul(h, layer.Wa), -1) + layer.ba
    if layer.attention_activation is not None:
        e = layer.attention_activation(e)
    e -= 10000.0 * (1.0 - tf.cast(filled, e.dtype))
    return tf.reduce_sum(tf.nn.softmax(e, axis=-1)[..., None] * values, axis=-2)


class Window(tf.Module):
    """One step of a model that reads whole windows (`bilstm`): the window rolls by one."""

    def __init__(self, model: keras.Model, spec: DataSpec, window: int):
        super().__init__()
        self.model, self.notes, self.window = model, spec.representation == "notes", window
        self.width = [3] if self.notes else [spec.keys]
        self.dtype = tf.int32 if self.notes else tf.float32

    def initial_state(self, batch, condition=None):
        return tf.zeros([batch, self.window, *self.width], self.dtype)  # the training padding

    def step(self, x, window):
        window = tf.concat([window[:, 1:], tf.cast(x, self.dtype)[:, None]], 1)
        out = self.model(window, training=False)
        return ([out[f] for f in NOTE_FIELDS] if self.notes else [out]), window


def feed(decoder, spec: DataSpec, primer, valid, condition=None):
    """Runs each row's valid primer steps through `decoder`; padding leaves a row untouched.
    Conditional models read `condition` ([B, SIZE]) at every step.

    Returns:
        (state after the primer, list of next-step logits per head).
    """
    batch, length = tf.shape(primer)[0], tf.shape(primer)[1]
    classes = list(spec.classes.values()) if spec.representation == "notes" else [spec.keys]

    def body(t, state, last):
        out, new = decoder.step(primer[:, t], state)
        return t + 1, _select(valid[:, t], new, state), _select(valid[:, t], out, last)

    _, state, last = tf.while_loop(lambda t, *_: t < length, body, (
        0, decoder.initial_state(batch, condition), [tf.zeros([batch, c]) for c in classes]))
    return state, last


def generate_next_step(decoder, spec: DataSpec, primer, valid, num_steps, temperature, top_k,
                       threshold, seed, condition=None):
    """Feeds each row's primer (where `valid`), then draws `max(num_steps)` steps.

    Returns:
        [B, n, 3] int32 events (notes) or [B, n, keys] float32 frames.
    """
    classes = list(spec.classes.values()) if spec.representation == "notes" else [spec.keys]
    state, last = feed(decoder, spec, primer, valid, condition)

    def draw(i, logits):
        if spec.representation == "notes":
            return tf.stack([categorical(lg, temperature, top_k,
                                         rng.uniform_tf(seed, i, s, c), BANNED[f])
                             for s, (f, lg, c) in enumerate(zip(NOTE_FIELDS, logits, classes))],
                            axis=1)
        return bernoulli(logits[0], temperature, threshold,
                         rng.uniform_tf(seed, i, 0, spec.keys))

    steps = tf.reduce_max(num_steps)
    out = tf.TensorArray(tf.int32 if spec.representation == "notes" else tf.float32, steps)

    def body(i, state, last, out):
        x = draw(i, last)
        last, state = decoder.step(x, state)
        return i + 1, state, last, out.write(i, x)

    *_, out = tf.while_loop(lambda i, *_: i < steps, body, (0, state, last, out))
    return batch_major(out.stack())


def batch_major(stacked):
    """[n, B, ...] → [B, n, ...]."""
    return tf.transpose(stacked, tf.concat([[1, 0], tf.range(2, tf.rank(stacked))], 0))


def joined(segments: tf.TensorArray, keys: int):
    """Segments written one per loop step ([count] x [B, T, keys]) → frames [B, count * T, keys]."""
    frames = batch_major(segments.stack())
    return tf.reshape(frames, [tf.shape(frames)[0], -1, keys])


def frames_of(logits, temperature, threshold, seed, step):
    """Bernoulli frames [B, T, keys] of key logits, drawn with `rng` stream 0 of `step`."""
    shape = tf.shape(logits)
    flat = tf.reshape(logits, [shape[0], -1])
    u = rng.uniform_tf(seed, step, 0, tf.shape(flat)[1])
    return tf.reshape(bernoulli(flat, temperature, threshold, u), shape)


