"""`vae`: a recurrent variational autoencoder over piano-roll segments (MusicVAE-style).

A bidirectional LSTM encodes a segment of `seq_len` frames to a Gaussian posterior over a
latent vector; an LSTM decoder, started from the latent and reading it at every step, writes
each frame's key logits. The loss is the reconstruction's Bernoulli NLL plus `beta` times the
KL divergence, with `beta` annealed from 0 to its final value over `anneal_epochs` (one seed
saw the KL term never settle with a fixed weight) and optional free bits (KL below
`free_bits` nats per latent dimension is not penalised). `elbo` (reconstruction + the whole
KL) is what early stopping and checkpoints watch; it does not move with the annealing.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from trainer import data as data_lib
from trainer.data import DataSpec

REPRESENTATIONS = ("pianoroll",)
DEFAULTS = dict(latent=64, units=256, beta=1.0, anneal_epochs=10, free_bits=0.0, walk=0.5,
                learning_rate=1e-3)
MONITOR = "elbo"


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Segments of `seq_len` frames (half-overlapping); an autoencoder's targets are its inputs."""
    x = data_lib.segment_arrays(folder, split, config.seq_len)
    return x, x


@keras.saving.register_keras_serializable("composer")
class MusicVAE(keras.Model):
    """Encoder, decoder and the annealed ELBO, trained by `train_step`."""

    def __init__(self, keys=88, segment=64, latent=64, units=256, beta=1.0, free_bits=0.0,
                 walk=0.5, **kwargs):
        super().__init__(**kwargs)
        self.keys, self.segment, self.latent, self.units = keys, segment, latent, units
        self.final_beta, self.free_bits, self.walk = beta, free_bits, walk
        self.beta = tf.Variable(0.0, trainable=False, name="beta")  # set by KLAnnealing
        self.encoder = layers.Bidirectional(layers.LSTM(units), name="encoder")
        self.mean = layers.Dense(latent, name="mean")
        self.log_var = layers.Dense(latent, name="log_var")
        self.initial = [layers.Dense(units, activation="tanh", name=f"initial_{i}")
                        for i in ("h", "c")]
        self.decoder = layers.LSTM(units, return_sequences=True, name="decoder")
        self.frame = layers.Dense(keys, name="frame")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "recon", "kl", "elbo")}

    def encode(self, frames):
        """(mean, log variance) [B, latent] of segments [B, segment, keys]."""
        h = self.encoder(frames)
        return self.mean(h), tf.clip_by_value(self.log_var(h), -10.0, 10.0)

    def decode(self, z):
        """Key logits [B, segment, keys] of latents [B, latent]."""
        state = [dense(z) for dense in self.initial]
        steps = tf.repeat(z[:, None], self.segment, axis=1)
        return self.frame(self.decoder(steps, initial_state=state))

    def call(self, frames, training=False):
        """Reconstruction logits, decoded from the posterior mean."""
        mean, _ = self.encode(frames)
        return self.decode(mean)

    def losses_of(self, frames, z=None):
        """Per-segment reconstruction NLL and KL (nats), decoding `z` (default: a posterior
        sample)."""
        mean, log_var = self.encode(frames)
        if z is None:
            z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))
        logits = self.decode(z)
        recon = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(frames, logits), [1, 2])
        return recon, kl_per_dimension(mean, log_var)

    def _objective(self, frames):
        recon, kl_dims = self.losses_of(frames)
        kl = tf.reduce_sum(kl_dims, -1)
        penalised = tf.reduce_sum(tf.maximum(kl_dims, self.free_bits), -1)
        loss = tf.reduce_mean(recon + self.beta * penalised)
        return loss, {"loss": loss, "recon": tf.reduce_mean(recon), "kl": tf.reduce_mean(kl),
                      "elbo": tf.reduce_mean(recon + kl)}

    def _report(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss, values = self._objective(x)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._report(values)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._report(self._objective(x)[1])

    def get_config(self):
        return {**super().get_config(), "keys": self.keys, "segment": self.segment,
                "latent": self.latent, "units": self.units, "beta": self.final_beta,
                "free_bits": self.free_bits, "walk": self.walk}


def kl_per_dimension(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) per latent dimension, nats."""
    return 0.5 * (tf.square(mean) + tf.exp(log_var) - 1.0 - log_var)


class KLAnnealing(keras.callbacks.Callback):
    """beta = final beta x min(1, epoch / anneal_epochs), set before each epoch and logged."""

    def __init__(self, anneal_epochs: int):
        super().__init__()
        self.anneal_epochs = anneal_epochs

    def weight(self, epoch: int) -> float:
        ramp = 1.0 if self.anneal_epochs <= 0 else min(1.0, epoch / self.anneal_epochs)
        return self.model.final_beta * ramp

    def on_epoch_begin(self, epoch, logs=None):
        self.model.beta.assign(self.weight(epoch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = float(self.model.beta.numpy())


def callbacks(hp: dict) -> list:
    return [KLAnnealing(hp["anneal_epochs"])]


def sample(model, spec: DataSpec, primer: np.ndarray, steps: int, temperature: float = 1.0,
           seed: int = 0, seq_len: int = 64) -> np.ndarray:
    """The exported `generate` for one row, eagerly (`trainer.decoders.generate_vae`)."""
    from trainer import decoders

    frames = decoders.generate_vae(
        model, tf.constant(np.asarray(primer, np.float32)[None]), tf.constant([steps]),
        tf.constant([temperature]), tf.constant([0.0]), tf.constant([seed], tf.int64))
    return frames.numpy()[0]


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    model = MusicVAE(spec.keys, seq_len or 64, hp["latent"], hp["units"], hp["beta"],
                     hp["free_bits"], hp["walk"], name="vae")
    model.compile(keras.optimizers.Adam(hp["learning_rate"]))
    model(np.zeros((1, seq_len or 64, spec.keys), np.float32))
    return model
