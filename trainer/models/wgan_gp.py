"""`wgan_gp`: a piano-roll GAN trained with the Wasserstein loss and a gradient penalty
(Gulrajani et al. 2017), which the Deep Symphony seed found far more stable than the classic
GAN loss.

The critic is a CNN over a segment of `seq_len` frames (keys as channels, no batch norm, as
the penalty needs per-example gradients; `batch_std` adds ProGAN's batch spread as an option).
With `fakes=drawn` (the default) it reads keys drawn from the generator's probabilities, as
`generate` draws them. Trained on pieces moved to C major / A minor, it composes in those keys.
Two generators:
- `cnn`: noise → dense → transposed 1-D convolutions over time → key probabilities;
- `dcrnn` (the seed's Deconvolutional RNN): a first RNN draws a coarse structure from the noise,
  each coarse step is repeated `repeat` times, and a second RNN writes the frames (both RNNs
  start from states the noise sets).
Two outputs:
- `keys` (the default): a probability per key, each key drawn on its own;
- `voices`: `voices` voices (soprano first, bass last), each a softmax over the keys and a
  rest, one key drawn per voice, as the JSB-chorale MuseGAN writes its four parts (Foster,
  Generative Deep Learning, 2nd ed.). The critic reads each voice as its own channels, a real
  segment split into voices by `voice_keys`: a line that jumps or a voice that collapses onto
  one key shows, where a roll of independent keys hides it.
Long pieces come from a chain of noise vectors: the `generate` signature's `form` ("ABCAB")
gives each segment a letter, and segments with the same letter share their noise.
The training step is compiled by XLA (`xla`), which fuses the gradient penalty's second
derivative: 5x the updates a minute on 2 CPU cores (BENCHMARKS.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from preprocessing.piece import InputError
from trainer import data as data_lib
from trainer import decoders, rng, sampling
from trainer.data import DataSpec
from trainer.export.base import Exported, keep_rows, per_row, signature

REPRESENTATIONS = ("pianoroll",)
CHOICES = {"generator": ("cnn", "dcrnn"), "output": ("keys", "voices"),
           "fakes": ("drawn", "threshold", "probabilities", "both")}
DEFAULTS = dict(generator="cnn", noise=64, filters=128, units=256, repeat=4, critic_steps=5,
                gradient_penalty=10.0, fakes="drawn", batch_std=False, floor=0.05,
                diversity=0.0, output="keys", voices=4, min_p=0.5, learning_rate=1e-4, xla=True)
# the JSB Chorales benchmark's frames, each segment in C major / A minor: the key is then the
# same in every example, where a GAN drawing from noise alone does not learn it (QUALITY.md)
TRAINING = dict(steps_per_quarter=1, encoding="sampled", to_c=True, seq_len=32)
EPOCHS = 40
MINUTES = 6  # 6-11 s an epoch, its step compiled by XLA (24 without it)
IS_GAN = True


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Segments of `seq_len` frames (half-overlapping); a GAN has no targets."""
    if config.seq_len % 8:
        raise InputError(f"--seq-len: wgan_gp needs a multiple of 8, not {config.seq_len}")
    x = data_lib.segment_arrays(folder, split, config.seq_len)
    return x, np.zeros((len(x),), np.float32)


@keras.saving.register_keras_serializable("composer")
class WGANGP(keras.Model):
    """Generator and critic, trained together by `train_step`: `critic_steps` critic updates
    (each with fresh noise, all on the step's real batch) per generator update."""

    def __init__(self, keys=88, segment=64, generator="cnn", noise=64, filters=128, units=256,
                 repeat=4, critic_steps=5, gradient_penalty=10.0, fakes="probabilities",
                 batch_std=False, floor=0.0, diversity=0.0, output="keys", voices=4, min_p=0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.keys, self.segment, self.kind, self.noise = keys, segment, generator, noise
        self.filters, self.units, self.repeat = filters, units, repeat
        self.critic_steps, self.penalty = critic_steps, gradient_penalty
        self.fakes, self.batch_std = fakes, batch_std
        self.floor, self.diversity = floor, diversity
        self.writes, self.voices, self.min_p = output, voices, min_p
        if output == "voices" and voices < 2:
            raise InputError(f"--hparams voices={voices}: output=voices needs 2 or more")
        # a logit per key, or per voice a logit per key and one for its rest
        width = keys if output == "keys" else voices * (keys + 1)
        if generator == "cnn":
            self.g_layers = [
                layers.Dense(segment // 8 * filters * 2, activation="relu", name="g_dense"),
                layers.Reshape((segment // 8, filters * 2)),
                *[layers.Conv1DTranspose(filters, 4, strides=2, padding="same",
                                         activation="relu", name=f"g_up_{i}") for i in range(3)],
                layers.Conv1D(width, 1, name="g_out")]
        else:
            if segment % repeat:
                raise InputError(f"--hparams repeat={repeat} must divide --seq-len {segment}")
            self.g_layers = [DCRNN(segment // repeat, repeat, units, name="dcrnn"),
                             layers.Dense(width, name="g_out")]
        self.c_layers = [
            *[layers.Conv1D(filters * 2 ** i, 4, strides=2, padding="same", name=f"c_conv_{i}")
              for i in range(3)],
            layers.Flatten(), layers.Dense(1, name="c_out")]
        # every draw of a training step (noise, fake keys, mixing weights) takes its seed from
        # this generator (`_draw`): the same seed trains the same model, with XLA or without
        self.seeds = keras.random.SeedGenerator(name="seeds")
        self.trackers = {n: keras.metrics.Mean(name=n)
                         for n in ("d_loss", "g_loss", "wasserstein", "penalty", "spread")}

    def probabilities(self, z, training=False):
        """What the generator writes from noise [B, noise]: key probabilities [B, segment, keys]
        (`output=keys`), or each voice's probabilities of each key and of a rest (the last)
        [B, segment, voices, keys + 1] (`voices`)."""
        h = z
        for layer in self.g_layers:
            h = layer(h, training=training)
        if self.writes == "keys":
            return tf.sigmoid(h)
        return tf.nn.softmax(tf.reshape(h, [-1, self.segment, self.voices, self.keys + 1]))

    def generate(self, z, training=False):
        """Key probabilities [B, segment, keys] from noise [B, noise]: with `output=voices`,
        the chance that some voice sounds the key (the voices are drawn independently)."""
        p = self.probabilities(z, training)
        if self.writes == "keys":
            return p
        return 1.0 - tf.reduce_prod(1.0 - p[..., :self.keys], 2)

    def critic(self, frames, training=False):
        """Scores [B, 1]: higher for segments the critic takes as real."""
        h = frames
        for layer in self.c_layers[:3]:
            h = tf.nn.leaky_relu(layer(h, training=training), 0.2)
        if self.batch_std:
            h = tf.concat([h, batch_std(h)], -1)
        for layer in self.c_layers[3:]:
            h = layer(h, training=training)
        return h

    def call(self, z, training=False):
        return self.generate(z, training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, c_optimizer, g_optimizer, xla=False, **kwargs):
        """`xla`: the training step compiled by XLA, 5x faster on 2 CPU cores (the gradient
        penalty's second derivative through the critic is most of a step; bench/gan_speed.py);
        Keras leaves XLA off on CPUs unless asked."""
        super().compile(jit_compile=xla, **kwargs)
        self.c_optimizer, self.g_optimizer = c_optimizer, g_optimizer

    def _weights(self, group):
        return [w for layer in group for w in layer.trainable_weights]

    def build_optimizers(self):
        """Creates both optimizers' slots now, outside `fit`'s traced step: created inside
        it, they cost a second trace of the step."""
        self.c_optimizer.build(self._weights(self.c_layers))
        self.g_optimizer.build(self._weights(self.g_layers))

    def _draw(self, op, shape):
        """`op` (`keras.random.uniform` or `normal`) seeded by the model's generator: the same
        seed draws the same numbers in every run (XLA's draws differ from TensorFlow's
        kernels', as its random bits are its own)."""
        return op(shape, seed=self.seeds)

    def _gradient_penalty(self, real, fake):
        eps = self._draw(keras.random.uniform, [tf.shape(real)[0], 1, 1])
        mixed = eps * real + (1.0 - eps) * fake
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            score = self.critic(mixed, training=True)
        grads = tape.gradient(score, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2]) + 1e-12)
        return tf.reduce_mean(tf.square(norm - 1.0))

    def _fake(self, p):
        """What the critic reads of the generator's probabilities `p` (`probabilities`, per
        `fakes`): themselves; keys drawn from them as `generate` draws them (`drawn`:
        BinaryMuseGAN's stochastic binary neurons, Dong and Yang 2018); the keys past 0.5, or
        each voice's likeliest (`threshold`: its deterministic ones); or the drawn keys and the
        probabilities side by side (`both`, as channels: a real segment is its keys twice, so
        soft probabilities give a fake away). Drawn or cut, the gradient passes straight
        through. With `output=voices` each voice is `keys` channels, its rest none."""
        if self.fakes == "probabilities":
            return self._channels(p)
        if self.writes == "voices":
            if self.fakes == "threshold":
                choice = tf.argmax(p, -1, output_type=tf.int32)
            else:
                u = self._draw(keras.random.uniform, tf.shape(p)[:-1])
                choice = categorical(p, u)
            drawn = tf.one_hot(choice, self.keys + 1, dtype=p.dtype)
        elif self.fakes == "threshold":
            drawn = tf.cast(p > 0.5, p.dtype)
        else:
            drawn = tf.cast(self._draw(keras.random.uniform, tf.shape(p)) < p, p.dtype)
        drawn = self._channels(p + tf.stop_gradient(drawn - p))
        return tf.concat([drawn, self._channels(p)], -1) if self.fakes == "both" else drawn

    def _channels(self, p):
        """The critic's channels of generator output `p`: the keys, or each voice's keys (its
        rest dropped) one voice after another [B, segment, voices * keys]."""
        if self.writes == "keys":
            return p
        return tf.reshape(p[..., :self.keys], [-1, self.segment, self.voices * self.keys])

    def _real(self, frames):
        """What the critic reads of real frames: as a fake reads (`_fake`), a real segment's
        keys are its own probabilities, split into voices (`voice_keys`) with `output=voices`."""
        if self.writes == "voices":
            frames = self._channels(tf.one_hot(voice_keys(frames, self.voices), self.keys + 1))
        return tf.concat([frames, frames], -1) if self.fakes == "both" else frames

    def _spread(self, z, p):
        """How far the generator's probabilities (`probabilities`: with `output=voices`, each
        voice's, rests included) move per unit the noise moves, from `z` (which gave `p`) to
        fresh noise: near 0 where the generator ignores its noise."""
        other = self._draw(keras.random.normal, tf.shape(z))
        moved = tf.reduce_mean(tf.abs(self.probabilities(other, training=True) - p))
        return moved / tf.reduce_mean(tf.abs(other - z))

    def train_step(self, data):
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch = tf.shape(real)[0]
        real = self._real(real)
        c_vars, g_vars = self._weights(self.c_layers), self._weights(self.g_layers)
        for _ in range(self.critic_steps):
            z = self._draw(keras.random.normal, [batch, self.noise])
            fake = self._fake(self.probabilities(z, training=True))
            with tf.GradientTape() as tape:
                distance = tf.reduce_mean(self.critic(real, training=True)) - \
                    tf.reduce_mean(self.critic(fake, training=True))
                penalty = self._gradient_penalty(real, fake)
                d_loss = -distance + self.penalty * penalty
            self.c_optimizer.apply(tape.gradient(d_loss, c_vars), c_vars)
        with tf.GradientTape() as tape:
            z = self._draw(keras.random.normal, [batch, self.noise])
            p = self.probabilities(z, training=True)
            g_loss = -tf.reduce_mean(self.critic(self._fake(p), training=True))
            spread = self._spread(z, p)
            # mode seeking (Mao et al. 2019): `diversity` / spread grows as the noise is ignored
            loss = g_loss + self.diversity / (spread + 1e-5) if self.diversity else g_loss
        self.g_optimizer.apply(tape.gradient(loss, g_vars), g_vars)
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("wasserstein", distance),
                            ("penalty", penalty), ("spread", spread)):
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    def get_config(self):
        return {**super().get_config(), "keys": self.keys, "segment": self.segment,
                "generator": self.kind, "noise": self.noise, "filters": self.filters,
                "units": self.units, "repeat": self.repeat, "critic_steps": self.critic_steps,
                "gradient_penalty": self.penalty, "fakes": self.fakes,
                "batch_std": self.batch_std, "floor": self.floor,
                "diversity": self.diversity, "output": self.writes, "voices": self.voices,
                "min_p": self.min_p}


def with_primer(spec: DataSpec, primer, steps: np.ndarray, vocab=None):
    """Composed from noise: no primer in the piece."""
    return sampling.to_piece(spec, steps), 0.0


def sample(model, spec: DataSpec, primer, steps: int, temperature: float = 1.0, seed: int = 0,
           seq_len: int = 64) -> np.ndarray:
    """The exported `generate` for one row, eagerly, in the form ABAC."""
    frames = generate(model, tf.constant([steps]), tf.constant(["ABAC"]),
                      tf.constant([temperature]), tf.constant([0.0]),
                      tf.constant([seed], tf.int64))
    return frames.numpy()[0]


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    segment = seq_len or 64
    model = WGANGP(spec.keys, segment, hp["generator"], hp["noise"], hp["filters"], hp["units"],
                   hp["repeat"], hp["critic_steps"], hp["gradient_penalty"], hp["fakes"],
                   hp["batch_std"], hp["floor"], hp["diversity"], hp["output"], hp["voices"],
                   hp["min_p"], name="wgan_gp")
    model.compile(keras.optimizers.Adam(hp["learning_rate"], beta_1=0.5, beta_2=0.9),
                  keras.optimizers.Adam(hp["learning_rate"], beta_1=0.5, beta_2=0.9),
                  xla=hp["xla"])
    model.critic(model._real(model(np.zeros((1, hp["noise"]), np.float32))))
    model.build_optimizers()
    return model


@keras.saving.register_keras_serializable("composer")
class DCRNN(layers.Layer):
    """The seed's Deconvolutional RNN: a first LSTM writes `steps` coarse steps from the noise
    [B, noise], each is repeated `repeat` times, and a second LSTM writes the frames
    [B, steps * repeat, units]. Both LSTMs start from states the noise sets: started from zero
    states, the first frame came out as a burst over the whole keyboard (QUALITY.md)."""

    def __init__(self, steps, repeat, units, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.repeat, self.units = steps, repeat, units
        self.start = layers.Dense(4 * units, activation="tanh", name="start")
        self.rnn_a = layers.LSTM(units, return_sequences=True, name="rnn_a")
        self.rnn_b = layers.LSTM(units, return_sequences=True, name="rnn_b")

    def call(self, z, training=False):
        h_a, c_a, h_b, c_b = tf.split(self.start(z), 4, -1)
        h = self.rnn_a(tf.repeat(z[:, None], self.steps, 1), initial_state=[h_a, c_a],
                       training=training)
        return self.rnn_b(tf.repeat(h, self.repeat, 1), initial_state=[h_b, c_b],
                          training=training)

    def get_config(self):
        return {**super().get_config(), "steps": self.steps, "repeat": self.repeat,
                "units": self.units}


def batch_std(h):
    """ProGAN's minibatch standard deviation (Karras et al. 2018): the features' spread over the
    batch, averaged, as one more channel [B, T, 1]; a batch of near-copies shows as a low one,
    so the critic can tell a generator that ignores its noise from the corpus."""
    spread = tf.reduce_mean(tf.math.reduce_std(h, axis=0))
    return tf.fill(tf.concat([tf.shape(h)[:-1], [1]], 0), spread)


def voice_keys(frames, voices: int):
    """Each frame of a roll [..., keys] as `voices` voices [..., voices]: a key index, or -1
    for a rest. The top voice takes the highest key, the bottom voice the lowest, the voices
    between the next highest keys in turn: a frame of fewer keys rests its inner voices (a
    single key is the top voice's), a frame of more drops its inner keys."""
    keys = frames.shape[-1]
    on = tf.cast(frames > 0.5, tf.int32)
    count = tf.reduce_sum(on, -1, keepdims=True)
    highest = tf.math.top_k(on * (tf.range(keys) + 1), voices - 1).values - 1
    lowest = keys - tf.math.top_k(on * (keys - tf.range(keys)), 1).values
    upper = tf.where(tf.range(voices - 1) < tf.maximum(count - 1, 1), highest, -1)
    return tf.concat([upper, tf.where(count >= 2, lowest, -1)], -1)


def categorical(w, u):
    """The class [...] drawn by the uniform `u` [...] in [0, 1) from weights `w` [..., classes]
    (not negative, not all 0; they need not sum to 1): the first class whose cumulative weight
    passes `u` times the total (inverse-CDF sampling). A class of weight 0 is never drawn."""
    total = tf.cumsum(w, -1)
    passed = tf.reduce_sum(tf.cast(total <= u[..., None] * total[..., -1:], tf.int32), -1)
    return tf.minimum(passed, tf.shape(w)[-1] - 1)


def form_letters(form, count):
    """Each row's letter index (A = 0) for segments 0..count-1: its form read in a cycle, or
    0, 1, 2, ... (every segment new) where the form is ""."""
    codes = tf.strings.unicode_decode(form, "UTF-8")
    length = tf.cast(codes.row_lengths(), tf.int32)
    # one column more than the longest form, so an all-"" batch still has one to gather from
    letters = tf.pad(codes.to_tensor(default_value=ord("A")), [[0, 0], [0, 1]],
                     constant_values=ord("A")) - ord("A")
    k = tf.range(count)[None]
    cycled = tf.gather(letters, k % tf.maximum(length, 1)[:, None], batch_dims=1)
    return tf.where(length[:, None] > 0, cycled, k)


def floored(p, floor: float):
    """Key probabilities with those below `floor` set to 0 and the rest scaled (up to 1) to keep
    each frame's expected count: the generator's long tail of unlikely keys, each rarely drawn,
    adds up to stray notes far above and below the voices (min-p truncation, for keys)."""
    kept = tf.where(p < floor, 0.0, p)
    scale = tf.reduce_sum(p, -1, keepdims=True) / tf.maximum(
        tf.reduce_sum(kept, -1, keepdims=True), 1e-6)
    return tf.minimum(kept * scale, 1.0)


def floored_voices(p, min_p: float):
    """Each voice's probabilities [..., keys + 1] with those below `min_p` (at most 1) times
    the voice's likeliest set to 0, as weights for `categorical` (min-p sampling, Nguyen et al.
    2024: the cut follows how sure the voice is, so a flat voice keeps its choices and the
    likeliest is always kept). The default 0.5 was measured (QUALITY.md, tenth pass): lower
    ones let each voice's long tail scatter notes far above and below the voices."""
    return tf.where(p < min(min_p, 1.0) * tf.reduce_max(p, -1, keepdims=True), 0.0, p)


def generate(model, num_steps, form, temperature, threshold, seed):
    """Segments from a chain of noise vectors, one per letter of `form` (ABCAB: the fourth
    segment replays the first), scaled by the temperature; keys sound with the generator's
    probability (`floored`), or where it passes `threshold` (a model trained on `fakes=threshold`:
    0.5 where the row's is 0). With `output=voices` each voice sounds one key drawn from its
    probabilities (`floored_voices`; a rest sounds none), or its likeliest where the cut is set
    (any threshold > 0, or a model trained on `fakes=threshold`).
    Returns [B, max(num_steps), keys]."""
    steps = tf.reduce_max(num_steps)
    count = (steps + model.segment - 1) // model.segment
    letters = form_letters(form, count)
    # a row's cut: its threshold, else the model's own (0.5 when its critic read the keys past
    # 0.5, `fakes=threshold`), else none: keys drawn
    cut = tf.where(threshold > 0, threshold, 0.5 if model.fakes == "threshold" else 0.0)

    def body(k, out):
        # a letter's noise and draws come from step = its index: a repeat replays it exactly
        letter = letters[:, k]
        z = rng.normal_tf(seed, letter, 1, model.noise) * temperature[:, None]
        p = model.probabilities(z)
        if model.writes == "voices":
            u = tf.reshape(rng.uniform_tf(seed, letter, 0, model.segment * model.voices),
                           tf.shape(p)[:-1])
            choice = tf.where(cut[:, None, None] > 0, tf.argmax(p, -1, output_type=tf.int32),
                              categorical(floored_voices(p, model.min_p), u))
            on = tf.reduce_max(tf.one_hot(choice, model.keys + 1)[..., :model.keys], 2)
            return k + 1, out.write(k, on)
        u = tf.reshape(rng.uniform_tf(seed, letter, 0, model.segment * model.keys), tf.shape(p))
        on = tf.where(cut[:, None, None] > 0, p > cut[:, None, None],
                      u < floored(p, model.floor))
        return k + 1, out.write(k, tf.cast(on, tf.float32))

    _, out = tf.while_loop(lambda k, _: k < count, body,
                           (0, tf.TensorArray(tf.float32, count)))
    return decoders.joined(out, model.keys)[:, :steps]


class Export(Exported):
    """`generate`: num_steps, form [B] ("ABCAB": a letter per segment; "" all new),
    temperature (scales the noise), threshold, seed → frames; `serving_default`: noise
    [B, noise] → the generator's key probabilities [B, segment, keys]."""

    def main_specs(self) -> list:
        return [per_row(tf.int32, "num_steps"), per_row(tf.string, "form"),
                per_row(tf.float32, "temperature"), per_row(tf.float32, "threshold"),
                per_row(tf.int64, "seed")]

    def family_signatures(self) -> dict:
        noise = [tf.TensorSpec([None, self.model.noise], tf.float32, name="noise")]
        return {"generate": signature(self._generate, self.main_specs()),
                "serving_default": signature(self._from_noise, noise)}

    def _generate(self, num_steps, form, temperature, threshold, seed):
        batch = tf.shape(num_steps)[0]
        letters = tf.strings.regex_full_match(form, "[A-Z]*")
        with tf.control_dependencies(self.check(batch, num_steps, temperature=temperature,
                                                threshold=threshold, seed=seed) + [
                tf.debugging.assert_equal(tf.shape(form)[0], batch,
                                          message="form: one value per row"),
                tf.debugging.assert_equal(tf.reduce_all(letters), True, message=(
                    "form: capital letters A-Z, one per segment, e.g. ABCAB"))]):
            frames = generate(self.model, num_steps, form, temperature, threshold, seed)
        return {"frames": keep_rows(frames, num_steps)}

    def _from_noise(self, noise):
        return {"probs": self.model.generate(noise)}
