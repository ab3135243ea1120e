"""`vae`: a recurrent variational autoencoder over piano-roll segments (MusicVAE-style).

A bidirectional LSTM encodes a segment of `seq_len` frames to a Gaussian posterior over a
latent vector; an LSTM decoder, started from the latent and reading it at every step, writes
each frame. With `decoder=autoregressive` (the default) the decoder also reads the frame before
(teacher-forced in training, its own draw when composing), as MusicVAE's does: a decoder that
reads only the latent (`decoder=flat`) has to carry every note of the segment in it, and on the
chorales its reconstruction stayed near the keys' marginals (11 nats a frame after 5 epochs).
The KL weight `beta` (0.2, as MusicVAE's) and free bits keep the latent in use beside the
autoregressive decoder. The default head (`head=nade`) is `rnn_nade`'s joint frame model
(`nade`): the decoder's outputs set the biases of a NADE over the frame's keys, scored exactly
(each key given the keys below it) and drawn key by key; `head=keys` draws a frame's keys
together by their expected count (`decoders.counted`).

Composing walks in latent space (`generate`), and the walk draws from a Gaussian with the
moments of the training segments' codes (`latent_prior`, kept as moving averages in training
as batch normalization keeps its statistics), not from the prior N(0, I): with beta 0.2 and
free bits the codes cover about half the prior's variance, and prior draws outside them decoded
to bursts of 40-60 keys (QUALITY.md, `bench/vae_latent.py`). Each next segment's latent keeps
`walk` (0.8) of the last one's offset from the codes' mean: at 0.5 the samples held their
primer's key less well (scale consistency overlap 0.43 against 0.77).

The loss is the reconstruction's Bernoulli NLL plus `beta` times the KL divergence, with `beta`
annealed from 0 to its final value over `anneal_epochs` (one seed
saw the KL term never settle with a fixed weight) and optional free bits (KL below
`free_bits` nats per latent dimension is not penalised). Early stopping and checkpoints watch
the loss, which after the annealing is the reconstruction plus a near constant (the free bits
held the KL term at 38.6 nats, its floor 38.4, at the end of the default run): `elbo`
(reconstruction + the whole KL, logged beside it) stopped falling after 10 epochs as the KL
grew, while the reconstruction, and with it the blends' ends, kept improving for 15 more.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from trainer import data as data_lib
from trainer import decoders, rng
from trainer.data import DataSpec
from trainer.export.base import Exported, keep_rows, per_row, signature
from trainer.models import nade

REPRESENTATIONS = ("pianoroll",)
CHOICES = {"decoder": ("autoregressive", "flat"), "head": ("keys", "nade")}
DEFAULTS = dict(latent=64, units=256, beta=0.2, anneal_epochs=4, free_bits=3.0, walk=0.8,
                learning_rate=2e-3, decoder="autoregressive", head="nade", nade_hidden=150)
TRAINING = dict(seq_len=32, batch_size=16)  # two-bar segments
# the validation reconstruction falls 2-3 nats an epoch at 12 epochs, and the blends' ends only
# come back to their primers (F1 0.42 -> 0.51) with it (QUALITY.md, sixth pass)
EPOCHS = 26
MINUTES = 25  # the gate, quiet cores (2026-12-02): 24.5 min; 40 with other work on them


def make_arrays(folder, split: str, spec: DataSpec, config):
    """Segments of `seq_len` frames (half-overlapping); an autoencoder's targets are its inputs."""
    x = data_lib.segment_arrays(folder, split, config.seq_len)
    return x, x


@keras.saving.register_keras_serializable("composer")
class MusicVAE(keras.Model):
    """Encoder, decoder and the annealed ELBO, trained by `train_step`."""

    def __init__(self, keys=88, segment=64, latent=64, units=256, beta=1.0, free_bits=0.0,
                 walk=0.8, decoder="autoregressive", head="keys", nade_hidden=150, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("decoder", decoder), ("head", head)):
            if value not in CHOICES[name]:
                raise ValueError(f"vae: {name} must be {' or '.join(CHOICES[name])}, "
                                 f"not {value!r}")
        self.keys, self.segment, self.latent, self.units = keys, segment, latent, units
        self.final_beta, self.free_bits, self.walk = beta, free_bits, walk
        self.autoregressive = decoder == "autoregressive"
        self.head, self.nade_hidden = head, nade_hidden
        self.beta = tf.Variable(0.0, trainable=False, name="beta")  # set by KLAnnealing
        self.encoder = layers.Bidirectional(layers.LSTM(units), name="encoder")
        self.mean = layers.Dense(latent, name="mean")
        self.log_var = layers.Dense(latent, name="log_var")
        self.initial = [layers.Dense(units, activation="tanh", name=f"initial_{i}")
                        for i in ("h", "c")]
        self.decoder = layers.LSTM(units, return_sequences=True, name="decoder")
        if head == "nade":
            self.visible_bias = layers.Dense(keys, name="visible_bias")
            self.hidden_bias = layers.Dense(nade_hidden, name="hidden_bias")
            self.nade = nade.NADE(nade_hidden, name="nade")
        else:
            self.frame = layers.Dense(keys, name="frame")
        self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "recon", "kl", "elbo")}
        # the aggregate posterior's moments, moving averages over training batches (as batch
        # normalization keeps its statistics); they start at the prior's
        self.posterior_mean = self.add_weight(shape=(latent,), initializer="zeros",
                                              trainable=False, aggregation="mean",
                                              name="posterior_mean")
        self.posterior_moment = self.add_weight(shape=(latent, latent), initializer="identity",
                                                trainable=False, aggregation="mean",
                                                name="posterior_moment")

    def encode(self, frames):
        """(mean, log variance) [B, latent] of segments [B, segment, keys]."""
        h = self.encoder(frames)
        return self.mean(h), tf.clip_by_value(self.log_var(h), -10.0, 10.0)

    def decode(self, z, frames=None):
        """Key logits [B, segment, keys] of latents [B, latent]; an autoregressive decoder reads
        `frames` [B, segment, keys] shifted by one (teacher forcing), and a NADE head gives
        each key's logit given the keys below it in `frames`."""
        h = self.decoder_outputs(z, frames)
        if self.head == "nade":
            return self.nade([self.visible_bias(h), self.hidden_bias(h), frames])
        return self.frame(h)

    def decoder_outputs(self, z, frames=None):
        """The decoder's outputs [B, segment, units] for latents [B, latent] (teacher-forced)."""
        state = [dense(z) for dense in self.initial]
        steps = tf.repeat(z[:, None], self.segment, axis=1)
        if self.autoregressive:
            before = tf.pad(frames[:, :-1], [[0, 0], [1, 0], [0, 0]])
            steps = tf.concat([steps, before], -1)
        return self.decoder(steps, initial_state=state)

    def draw_frame(self, h, temperature, threshold, u, u_count, weights):
        """A frame [B, keys] from decoder outputs h [B, units]: the NADE's keys one by one
        (`weights`: `nade.split_weights`), or the keys' logits drawn together by count."""
        if self.head == "nade":
            return nade.draw_keys(self.visible_bias(h), self.hidden_bias(h), temperature,
                                  threshold, u, weights)[0]
        return decoders.counted(self.frame(h), temperature, threshold, 1.0, u, u_count)

    def draw(self, z, temperature, threshold, seed, step):
        """Frames [B, segment, keys] drawn from latents, with `rng` streams 0 and 1 of `step`.

        An autoregressive decoder feeds each drawn frame back in. Each frame's keys are drawn
        together (`draw_frame`): key by key from the NADE, or, with `head=keys`, as many as
        their expected count (`decoders.counted`; independent draws of each key sound many more
        than the data's frames do, and one such frame read back in sends the rest of the
        segment further off).
        """
        if not self.autoregressive and self.head == "keys":
            return decoders.frames_of(self.decode(z), temperature, threshold, seed, step)
        u = tf.reshape(rng.uniform_tf(seed, step, 0, self.segment * self.keys),
                       [-1, self.segment, self.keys])
        u_count = rng.uniform_tf(seed, step, 1, self.segment)
        state = [dense(z) for dense in self.initial]
        weights = nade.split_weights(self.nade) if self.head == "nade" else None

        def body(t, frame, state, out):
            h, state = self.decoder.cell(
                tf.concat([z, frame], -1) if self.autoregressive else z, state)
            frame = self.draw_frame(h, temperature, threshold, u[:, t], u_count[:, t], weights)
            return t + 1, frame, list(state), out.write(t, frame)

        *_, out = tf.while_loop(
            lambda t, *_: t < self.segment, body,
            (0, tf.zeros([tf.shape(z)[0], self.keys]), state,
             tf.TensorArray(tf.float32, self.segment)))
        return decoders.batch_major(out.stack())

    def call(self, frames, training=False):
        """Reconstruction logits, decoded from the posterior mean."""
        mean, _ = self.encode(frames)
        return self.decode(mean, frames)

    def losses_of(self, frames, z=None, posterior=None):
        """Per-segment reconstruction NLL and KL (nats), decoding `z` (default: a posterior
        sample); `posterior` (mean, log variance), when given, is the encoding of `frames`."""
        mean, log_var = posterior if posterior is not None else self.encode(frames)
        if z is None:
            z = mean + tf.exp(0.5 * log_var) * tf.random.normal(tf.shape(mean))
        logits = self.decode(z, frames)
        recon = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(frames, logits), [1, 2])
        return recon, kl_per_dimension(mean, log_var)

    def track_posterior(self, mean, log_var, momentum=0.99):
        """Moves the aggregate posterior's moments towards this batch's: E[z] and E[z z^T] of
        z ~ the mixture of the batch's posteriors N(mean, exp(log_var))."""
        count = tf.cast(tf.shape(mean)[0], tf.float32)
        moment = (tf.matmul(mean, mean, transpose_a=True) / count
                  + tf.linalg.diag(tf.reduce_mean(tf.exp(log_var), 0)))
        for variable, value in ((self.posterior_mean, tf.reduce_mean(mean, 0)),
                                (self.posterior_moment, moment)):
            variable.assign(momentum * variable + (1.0 - momentum) * value)

    def latent_prior(self):
        """(mean [latent], Cholesky factor [latent, latent]) of the Gaussian fitted to the
        aggregate posterior: where the codes of real segments lie, as composing draws them."""
        mean = self.posterior_mean
        covariance = self.posterior_moment - mean[:, None] * mean[None, :]
        return mean, tf.linalg.cholesky(covariance + 1e-4 * tf.eye(self.latent))

    def _objective(self, frames, track=False):
        posterior = self.encode(frames)
        if track:
            self.track_posterior(*posterior)
        recon, kl_dims = self.losses_of(frames, posterior=posterior)
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
            loss, values = self._objective(x, track=True)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._report(values)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._report(self._objective(x)[1])

    def get_config(self):
        return {**super().get_config(), "keys": self.keys, "segment": self.segment,
                "latent": self.latent, "units": self.units, "beta": self.final_beta,
                "free_bits": self.free_bits, "walk": self.walk,
                "decoder": "autoregressive" if self.autoregressive else "flat",
                "head": self.head, "nade_hidden": self.nade_hidden}


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
    """The exported `generate` for one row, eagerly (`generate`)."""
    frames = generate(
        model, tf.constant(np.asarray(primer, np.float32)[None]), tf.constant([steps]),
        tf.constant([temperature]), tf.constant([0.0]), tf.constant([seed], tf.int64))
    return frames.numpy()[0]


def build(spec: DataSpec, hp: dict, seq_len: int | None = None) -> keras.Model:
    model = MusicVAE(spec.keys, seq_len or 64, hp["latent"], hp["units"], hp["beta"],
                     hp["free_bits"], hp["walk"], hp["decoder"], hp["head"], hp["nade_hidden"],
                     name="vae")
    model.compile(keras.optimizers.Adam(hp["learning_rate"]))
    model(np.zeros((1, seq_len or 64, spec.keys), np.float32))
    return model


def walk(previous, noise, rho, temperature, mean=0.0, scale=None):
    """The next segment's latent: rho x the last one's offset from `mean`, plus fresh Gaussian
    noise through `scale` (a Cholesky factor; None: the prior's) scaled by the temperature, which
    keeps N(mean, scale scale^T) when the last latent was drawn from it."""
    if scale is not None:
        noise = tf.matmul(noise, scale, transpose_b=True)
    return (mean + rho * (previous - mean)
            + tf.sqrt(1.0 - rho * rho) * temperature[:, None] * noise)


def segment_of(frames, length: int):
    """The last `length` frames of [B, L, keys], zero-padded at the start when shorter."""
    pad = tf.maximum(length - tf.shape(frames)[1], 0)
    frames = tf.pad(frames, [[0, 0], [pad, 0], [0, 0]])
    return frames[:, -length:]


def generate(model, primer, num_steps, temperature, threshold, seed):
    """Segments decoded from a walk in latent space that starts at the primer's code.

    The primer's last segment is encoded to its posterior mean; each next latent keeps
    `model.walk` of the one before and adds noise scaled by the temperature, drawn from the
    Gaussian fitted to the training segments' codes (`latent_prior`; walk 0: independent
    samples from it). The prior N(0, I) would be wrong here: beta 0.2 and free bits leave the
    codes of real segments at about half its variance, and its draws outside them decoded to
    frames of 40-60 keys.
    Returns frames [B, n, keys], n = max(num_steps).
    """
    z, _ = model.encode(segment_of(primer, model.segment))
    steps = tf.reduce_max(num_steps)
    count = (steps + model.segment - 1) // model.segment
    rho = tf.constant(model.walk, tf.float32)
    mean, scale = model.latent_prior()

    def body(k, z, out):
        z = walk(z, rng.normal_tf(seed, k, 1, model.latent), rho, temperature, mean, scale)
        return k + 1, z, out.write(k, model.draw(z, temperature, threshold, seed, k))

    *_, out = tf.while_loop(lambda k, *_: k < count, body,
                            (0, z, tf.TensorArray(tf.float32, count)))
    return decoders.joined(out, model.keys)[:, :steps]


def slerp(a, b, t):
    """Spherical interpolation between rows of a and b at fractions t [B] (linear where the two
    are parallel)."""
    unit = tf.math.l2_normalize
    cos = tf.clip_by_value(tf.reduce_sum(unit(a, -1) * unit(b, -1), -1), -1.0, 1.0)
    omega = tf.acos(cos)
    sin = tf.sin(omega)
    safe = sin > 1e-4
    wa = tf.where(safe, tf.sin((1.0 - t) * omega) / tf.where(safe, sin, 1.0), 1.0 - t)
    wb = tf.where(safe, tf.sin(t * omega) / tf.where(safe, sin, 1.0), t)
    return wa[:, None] * a + wb[:, None] * b


def interpolate(model, a, b, num_points, temperature, threshold, seed):
    """max(num_points) segments decoded from latents blended from a's code to b's
    (spherically); row r's segments past its num_points are zeros. Returns [B, n * T, keys]."""
    za, _ = model.encode(segment_of(a, model.segment))
    zb, _ = model.encode(segment_of(b, model.segment))
    count = tf.reduce_max(num_points)
    last = tf.cast(tf.maximum(num_points - 1, 1), tf.float32)

    def body(k, out):
        t = tf.minimum(tf.cast(k, tf.float32) / last, 1.0)
        frames = model.draw(slerp(za, zb, t), temperature, threshold, seed, k)
        keep = tf.cast(k < num_points, tf.float32)[:, None, None]
        return k + 1, out.write(k, frames * keep)

    _, out = tf.while_loop(lambda k, _: k < count, body,
                           (0, tf.TensorArray(tf.float32, count)))
    return decoders.joined(out, model.keys)


class Export(Exported):
    """Signatures:
    - `generate`: piano-roll inputs → frames from a latent walk starting at the primer's code;
      temperature scales both the walk's noise and the frames' logits.
    - `interpolate`: a [B, L, keys], b [B, L', keys], num_points, temperature, threshold, seed
      → frames [B, n * segment, keys], decoded from latents blended from a's code to b's.
    - `serving_default`: context → the posterior mean of its last segment and its
      reconstruction (with the autoregressive decoder, each frame given the segment's frame
      before it).
    - `log_likelihood`: frames → nll per frame (reconstruction at the posterior mean plus the
      segment's KL spread over its frames: an ELBO-style plug-in score, not a bound), probs.
    """

    def main_specs(self) -> list:
        return self.roll_generate_specs()

    def family_signatures(self) -> dict:
        return {"generate": signature(self._generate, self.main_specs()),
                "interpolate": signature(self._interpolate, [
                    *self.roll_specs("a", "b"), per_row(tf.int32, "num_points"),
                    per_row(tf.float32, "temperature"), per_row(tf.float32, "threshold"),
                    per_row(tf.int64, "seed")]),
                "serving_default": signature(self._encode, self.roll_specs("context")),
                "log_likelihood": signature(self._likelihood, self.roll_specs("frames"))}

    def _generate(self, primer, num_steps, temperature, threshold, seed):
        with tf.control_dependencies(self.check(
                tf.shape(primer)[0], num_steps, temperature=temperature, threshold=threshold,
                seed=seed) + [
                tf.debugging.assert_greater(tf.shape(primer)[1], 0, message="primer is empty")]):
            frames = generate(self.model, primer, num_steps, temperature, threshold, seed)
        return {"frames": keep_rows(frames, num_steps)}

    def _encode(self, context):
        segment = segment_of(context, self.model.segment)
        mean, _ = self.model.encode(segment)
        return {"latent": mean, "probs": tf.sigmoid(self.model.decode(mean, segment))}

    def _interpolate(self, a, b, num_points, temperature, threshold, seed):
        batch = tf.shape(a)[0]
        most = max(1, self.max_steps // self.model.segment)  # points are whole segments
        with tf.control_dependencies(self.check(
                batch, num_points, "num_points", temperature=temperature, threshold=threshold,
                seed=seed) + [
                tf.debugging.assert_less_equal(num_points, most, message=(
                    f"num_points must be <= {most} (max_steps / segment)")),
                tf.debugging.assert_equal(tf.shape(b)[0], batch, message="b: one row per a row"),
                tf.debugging.assert_greater(tf.shape(a)[1], 0, message="a is empty"),
                tf.debugging.assert_greater(tf.shape(b)[1], 0, message="b is empty")]):
            frames = interpolate(self.model, a, b, num_points, temperature, threshold, seed)
        return {"frames": frames}

    def _likelihood(self, frames):
        """Segment by segment (the last one zero-padded at the end)."""
        segment = self.model.segment
        length = tf.shape(frames)[1]
        pad = (-length) % segment
        padded = tf.pad(frames, [[0, 0], [0, pad], [0, 0]])
        batch, count = tf.shape(frames)[0], (length + pad) // segment
        chunks = tf.reshape(padded, [-1, segment, self.spec.keys])
        mean, log_var = self.model.encode(chunks)
        logits = self.model.decode(mean, chunks)
        kl = tf.reduce_sum(kl_per_dimension(mean, log_var), -1)
        per_frame = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(chunks, logits), -1)
        per_frame += kl[:, None] / tf.cast(segment, tf.float32)
        nll = tf.reshape(per_frame, [batch, count * segment])[:, :length]
        probs = tf.reshape(tf.sigmoid(logits), [batch, count * segment, -1])[:, :length]
        return {"nll": nll, "probs": probs}
