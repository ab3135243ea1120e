"""`midinet`: MidiNet's conditional CNN GAN over bars (Yang et al. 2017).

The generator turns noise and a chord into a 16 x 128 bar; a conditioner CNN reads the previous
bar and feeds each of the generator's layers. The discriminator is a CNN over a bar and its chord
(and, as an option, the previous bar). Options: spectral normalisation in the discriminator, a
learned chord embedding, feature matching, one-sided label smoothing. `fit` and callbacks work:
`train_step` updates both networks and reports `d_loss` and `g_loss`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from preprocessing import dataset
from preprocessing.bars import bars_to_piece
from preprocessing.piece import InputError
from trainer import decoders, rng
from trainer.data import DataSpec
from trainer.export.base import Exported, keep_rows, per_row, signature, spec

REPRESENTATIONS = ("bars",)
DEFAULTS = dict(noise=100, filters=64, learning_rate=2e-4, spectral_norm=True,
                chord_embedding=0, prev_to_discriminator=False, feature_matching=0.1,
                label_smoothing=0.9)
IS_GAN = True
MINUTES = 3  # its 30 epochs
STEPS, PITCHES, CHORD = 16, 128, 13


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Every bar with its previous bar and chord; a GAN has no targets, so y is the bar too."""
    items = dataset.load_split(folder, split)
    if not items:
        raise InputError(f"no {split} bars")
    x = {k: np.concatenate([i[k] for i in items]).astype(np.float32)
         for k in ("melody", "previous", "chord")}
    x["melody"], x["previous"] = x["melody"][..., None], x["previous"][..., None]
    return x, np.zeros((len(x["melody"]),), np.float32)


def _chord_features(chord, embedding):
    """The 13-value chord, or an embedding of its 25 classes (12 major, 12 minor, none)."""
    if embedding is None:
        return chord
    root = tf.argmax(chord[:, :12], axis=-1, output_type=tf.int32)
    cls = tf.where(tf.reduce_max(chord[:, :12], -1) > 0,
                   root + 12 * tf.cast(chord[:, 12] > 0.5, tf.int32), 24)
    return embedding(cls)


def _tile(vector, height):
    """[B, C] → [B, height, 1, C], to concatenate with feature maps."""
    return tf.tile(vector[:, None, None, :], [1, height, 1, 1])


@keras.saving.register_keras_serializable("composer")
class MidiNetGAN(keras.Model):
    """Generator, conditioner and discriminator, trained together by `train_step`."""

    def __init__(self, noise=100, filters=64, spectral_norm=True, chord_embedding=0,
                 prev_to_discriminator=False, feature_matching=0.1, label_smoothing=0.9,
                 **kwargs):
        super().__init__(**kwargs)
        self.noise, self.filters, self.spectral_norm = noise, filters, spectral_norm
        self.chord_embedding_dim = chord_embedding
        self.prev_to_discriminator = prev_to_discriminator
        self.feature_matching, self.label_smoothing = feature_matching, label_smoothing
        self.embedding = layers.Embedding(25, chord_embedding) if chord_embedding else None
        # conditioner: previous bar [16, 128, 1] → maps at heights 16, 8, 4, 2
        self.cond = [layers.Conv2D(16, (1, PITCHES), activation="relu", name="cond_0")] + [
            layers.Conv2D(16, (2, 1), strides=(2, 1), activation="relu", name=f"cond_{i}")
            for i in (1, 2, 3)]
        self.g_dense = [layers.Dense(1024, activation="relu"),
                        layers.Dense(2 * filters, activation="relu")]
        self.g_up = [layers.Conv2DTranspose(filters, (2, 1), strides=(2, 1), activation="relu",
                                            name=f"g_up_{i}") for i in range(3)]
        self.g_out = layers.Conv2DTranspose(1, (1, PITCHES), strides=(1, PITCHES),
                                            name="g_out")
        sn = layers.SpectralNormalization if spectral_norm else (lambda layer: layer)
        self.d_conv = [sn(layers.Conv2D(14, (2, PITCHES), strides=(2, 1))),
                       sn(layers.Conv2D(77, (4, 1), strides=(2, 1)))]
        self.d_dense = [sn(layers.Dense(1024)), sn(layers.Dense(1))]

    def generate(self, z, chord, previous, training=False):
        """Bars (each step's distribution over the 128 pitches, [B, 16, 128, 1]) from noise,
        chords and previous bars.

        A softmax over pitches, not the paper's independent sigmoids: a real bar has one pitch
        a step, so the discriminator sees distributions shaped like it; with sigmoids no step
        reached 0.5 after 30 epochs (silence) and the likeliest pitch was the same everywhere.
        """
        c = _chord_features(chord, self.embedding)
        maps, h = [], previous
        for conv in self.cond:
            h = conv(h)
            maps.append(h)  # heights 16, 8, 4, 2
        h = self.g_dense[1](self.g_dense[0](tf.concat([z, c], -1)))
        h = tf.reshape(h, [-1, 2, 1, self.filters])
        for up, cond in zip(self.g_up, maps[:0:-1]):  # heights 2, 4, 8 → 4, 8, 16
            h = up(tf.concat([h, cond, _tile(c, h.shape[1])], -1))
        h = tf.concat([h, maps[0], _tile(c, STEPS)], -1)
        return tf.nn.softmax(self.g_out(h), axis=2)

    def discriminate(self, bar, chord, previous, training=False):
        """(logit [B, 1], features [B, F]) for bars with their conditions."""
        c = _chord_features(chord, self.embedding)
        h = tf.concat([bar, previous], -1) if self.prev_to_discriminator else bar
        h = tf.concat([h, tf.tile(c[:, None, None, :], [1, STEPS, PITCHES, 1])], -1)
        for conv in self.d_conv:
            h = tf.nn.leaky_relu(conv(h, training=training), 0.2)
        features = tf.reshape(h, [tf.shape(h)[0], -1])
        h = tf.nn.leaky_relu(self.d_dense[0](features, training=training), 0.2)
        return self.d_dense[1](h, training=training), features

    def call(self, inputs, training=False):
        """The generator's bars for {"chord", "previous"} and optional "noise"."""
        chord = inputs["chord"]
        z = inputs.get("noise")
        if z is None:
            z = tf.random.normal([tf.shape(chord)[0], self.noise])
        return self.generate(z, chord, inputs["previous"], training)

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def variable_groups(self) -> tuple[list, list]:
        """The generator's (with the conditioner's) and the discriminator's trainable
        variables."""
        def of(group):
            return [v for layer in group for v in layer.trainable_weights]

        return (of([*self.cond, *self.g_dense, *self.g_up, self.g_out]
                   + ([self.embedding] if self.embedding else [])),
                of([*self.d_conv, *self.d_dense]))

    def build_optimizers(self):
        """Creates both optimizers' slots now, outside `fit`'s traced step: created inside
        it, they cost a second trace of the step."""
        g_vars, d_vars = self.variable_groups()
        self.g_optimizer.build(g_vars)
        self.d_optimizer.build(d_vars)

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real, chord, previous = x["melody"], x["chord"], x["previous"]
        z = tf.random.normal([tf.shape(real)[0], self.noise])
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        g_vars, d_vars = self.variable_groups()
        with tf.GradientTape() as d_tape:
            fake = self.generate(z, chord, previous, training=True)
            real_logit, _ = self.discriminate(real, chord, previous, training=True)
            fake_logit, _ = self.discriminate(fake, chord, previous, training=True)
            d_loss = (bce(tf.fill(tf.shape(real_logit), self.label_smoothing), real_logit)
                      + bce(tf.zeros_like(fake_logit), fake_logit))
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        with tf.GradientTape() as g_tape:
            fake = self.generate(z, chord, previous, training=True)
            fake_logit, fake_features = self.discriminate(fake, chord, previous, training=True)
            _, real_features = self.discriminate(real, chord, previous, training=True)
            g_loss = bce(tf.ones_like(fake_logit), fake_logit) + self.feature_matching * \
                tf.reduce_mean(tf.square(tf.reduce_mean(real_features, 0)
                                         - tf.reduce_mean(fake_features, 0)))
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}

    def get_config(self):
        return {**super().get_config(), "noise": self.noise, "filters": self.filters,
                "spectral_norm": self.spectral_norm, "chord_embedding": self.chord_embedding_dim,
                "prev_to_discriminator": self.prev_to_discriminator,
                "feature_matching": self.feature_matching, "label_smoothing": self.label_smoothing}


def primer(x) -> dict:
    """Chords of the first eight bars and the bar before the first."""
    return {"chord": x["chord"][:8], "previous": x["previous"][0]}


def sample(model, spec: DataSpec, primer: dict, steps: int, temperature: float = 1.0,
           seed: int = 0, seq_len: int = 64) -> np.ndarray:
    """`steps // 16` bars, each from fresh noise, the primer's chords and the bar before it."""
    seeds = np.asarray([seed], np.int64)
    previous = np.asarray(primer["previous"], np.float32)[None]
    bars = []
    for b in range(max(1, steps // STEPS)):
        z = rng.normal_np(seeds, b, 0, model.noise)
        chord = np.asarray(primer["chord"][b % len(primer["chord"])], np.float32)[None]
        bar = melody(np.asarray(model.generate(z, chord, previous))[0, ..., 0])
        bars.append(bar)
        previous = bar[None, ..., None]
    return np.stack(bars)


def melody(probs: np.ndarray) -> np.ndarray:
    """[16, 128] distributions → one-hot melody: each step's likeliest pitch (as MidiNet's
    melodies, no rests)."""
    bar = np.zeros_like(probs)
    bar[np.arange(len(probs)), probs.argmax(axis=1)] = 1
    return bar


def to_piece(spec: DataSpec, steps, vocab=None):
    """Melody bars, or an encoded split's item (its melody), as a piece."""
    return bars_to_piece(steps["melody"] if isinstance(steps, dict) else steps)


def with_primer(spec: DataSpec, primer: dict, steps: np.ndarray, vocab=None):
    """The melody over the primer's chords as block triads (the primer is not music itself)."""
    return bars_to_piece(steps, np.resize(primer["chord"], (len(steps), CHORD))), 0.0


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    model = MidiNetGAN(hp["noise"], hp["filters"], hp["spectral_norm"], hp["chord_embedding"],
                       hp["prev_to_discriminator"], hp["feature_matching"],
                       hp["label_smoothing"], name="midinet")
    model.compile(keras.optimizers.Adam(hp["learning_rate"], beta_1=0.5),
                  keras.optimizers.Adam(hp["learning_rate"], beta_1=0.5))
    bar = np.zeros((1, STEPS, PITCHES, 1), np.float32)
    chord = np.zeros((1, CHORD), np.float32)
    model({"chord": chord, "previous": bar})
    model.discriminate(bar, chord, bar)
    model.build_optimizers()
    return model


def generate(model, chords, num_bars, seed):
    """In the graph: max(num_bars) bars [B, n, 16, 128], bar b over chord b (cycling the
    chords), each conditioned on the bar before it; each step sounds its likeliest pitch
    (`melody`)."""
    batch, count = tf.shape(chords)[0], tf.shape(chords)[1]
    steps = tf.reduce_max(num_bars)

    def body(b, previous, out):
        z = rng.normal_tf(seed, b, 0, model.noise)
        probs = model.generate(z, chords[:, b % count], previous)[..., 0]
        bar = tf.one_hot(tf.argmax(probs, axis=-1), probs.shape[-1])
        return b + 1, bar[..., None], out.write(b, bar)

    previous = tf.zeros([batch, STEPS, PITCHES, 1])
    *_, out = tf.while_loop(lambda b, *_: b < steps, body,
                            (0, previous, tf.TensorArray(tf.float32, steps)))
    return decoders.batch_major(out.stack())


class Export(Exported):
    """`generate`: chords [B, C, 13], num_bars, seed → bars [B, n, 16, 128];
    `serving_default`: chord [B, 13], previous [B, 16, 128], seed → probs [B, 16, 128]."""

    def main_specs(self) -> list:
        return [spec([None, None, CHORD], tf.float32, "chords"), per_row(tf.int32, "num_bars"),
                per_row(tf.int64, "seed")]

    def family_signatures(self) -> dict:
        return {"generate": signature(self._generate, self.main_specs()),
                "serving_default": signature(self._next_bar, [
                    spec([None, CHORD], tf.float32, "chord"),
                    spec([None, STEPS, PITCHES], tf.float32, "previous"),
                    per_row(tf.int64, "seed")])}

    def _generate(self, chords, num_bars, seed):
        with tf.control_dependencies(self.check(tf.shape(chords)[0], num_bars, "num_bars",
                                                seed=seed) + [
                tf.debugging.assert_greater(tf.shape(chords)[1], 0, message="chords is empty")]):
            bars = generate(self.model, chords, num_bars, seed)
        return {"bars": keep_rows(bars, num_bars)}

    def _next_bar(self, chord, previous, seed):
        z = rng.normal_tf(seed, 0, 0, self.model.noise)
        return {"probs": self.model.generate(z, chord, previous[..., None])[..., 0]}
