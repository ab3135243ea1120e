"""The two latent-space families, `vae` (MusicVAE-style) and `wgan_gp` (Wasserstein GAN with a
gradient penalty), end to end: trained by `python -m trainer.task` in this process, their
metrics.csv, their losses on hand-checked inputs, the saved model.keras reloaded, and the exported
SavedModels' signatures (generate, interpolate, log_likelihood, serving_default, metadata)
against the in-graph decoders run eagerly; then the request helpers, `trainer.generate` and
`python -m evaluation` on them.

Everything is real: MIDI files written with mido, datasets built by `preprocessing.dataset`,
tiny models (latent 4, 8 units, 8 filters) trained for one to three epochs, and
`tf.saved_model.load` of the exported folders.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from evaluation import evaluate
from preprocessing import pianoroll
from preprocessing.piece import InputError
from preprocessing.readers import read_file
from serving import contract
from serving.composer import Composer
from tests.conftest import nade_log_likelihood, notes_of, two_voices, write_midi_file
from tests.zoo import run_main
from trainer import data as data_lib
from trainer import export, generate, rng, task
from trainer.config import Config
from trainer.models import MODELS, vae, wgan_gp

SEGMENT = 16  # --seq-len: the vae's segment and the GAN's
KEYS = 88
# head=keys: the count head, whose eager draw (the reference of the exported loop) is quick; the
# default NADE head is the zoo's (test_export) and test_serving_generators'
VAE_HPARAMS = "latent=4,units=8,anneal_epochs=2,beta=1.0,free_bits=0.0,head=keys"
# XLA's compiling takes longer than these tiny trainings (a test compares it with the graph)
GAN_HPARAMS = {"cnn": "noise=4,filters=8,units=8,critic_steps=2,xla=false",
               "dcrnn": "generator=dcrnn,repeat=4,noise=4,filters=8,units=8,critic_steps=1,"
                        "xla=false"}
GAN_EPOCHS = {"cnn": 2, "dcrnn": 1}
GAN_INPUTS = "num_steps,form,temperature,threshold,seed"


def run_task(argv) -> tuple[int, str, str]:
    """`trainer.task.main` in this process: (exit status, stdout, stderr)."""
    return run_main(task.main, argv)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metadata(loaded) -> dict:
    return Composer(loaded).metadata()


# --- fixtures: MIDI corpus → trained jobs → exported and reloaded models --------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vae-gan")


@pytest.fixture(scope="module")
def corpus(root) -> Path:
    folder = root / "corpus"
    for k in range(5):
        write_midi_file(folder / f"piece{k}.mid", two_voices(700 + k))
    return folder


@pytest.fixture(scope="module")
def pieces(corpus) -> list:
    return [read_file(p)[0] for p in sorted(corpus.glob("*.mid"))]


@dataclasses.dataclass
class Job:
    """A `trainer.task` run: its job folder, the export, the export loaded back and the
    job's model.keras loaded back."""

    job: Path
    path: Path
    loaded: object
    model: keras.Model

    @property
    def meta(self) -> dict:
        return metadata(self.loaded)

    def training_windows(self, name: str) -> np.ndarray:
        folder = self.job / "data"
        spec = data_lib.spec_of(folder)
        x, _ = MODELS[name].arrays(folder, "train", spec,
                                   Config(model=name, seq_len=SEGMENT, export_dir=""))
        return x


def train(root: Path, corpus: Path, name: str, export_name: str, hparams: str,
          epochs: int) -> Job:
    job = root / f"job-{export_name}"
    rc, out, err = run_task(["--model", name, "--data", corpus, "--epochs", epochs,
                             "--seq-len", SEGMENT, "--batch-size", 8, "--hparams", hparams,
                             "--sample-every", 0, "--job-dir", job,
                             "--export-dir", root / "exports", "--export-name", export_name])
    assert rc == 0, err[-3000:]
    path = Path(json.loads(out.strip().splitlines()[-1])["export"])
    assert path == root / "exports" / export_name / "1"
    return Job(job, path, tf.saved_model.load(str(path)),
               keras.saving.load_model(job / "model.keras"))


@pytest.fixture(scope="module")
def vae_job(root, corpus) -> Job:
    return train(root, corpus, "vae", "vae", VAE_HPARAMS, 3)


@pytest.fixture(scope="module")
def vae_walk0(root, corpus) -> Job:
    """A vae whose latent walk forgets the primer: `--hparams walk=0`."""
    return train(root, corpus, "vae", "vae-walk0", "latent=4,units=8,walk=0,head=keys", 1)


@pytest.fixture(scope="module")
def gans(root, corpus):
    """generator → its trained job, each built once, on first use."""
    cache = {}

    def get(generator: str) -> Job:
        if generator not in cache:
            cache[generator] = train(root, corpus, "wgan_gp", f"wgan-{generator}",
                                     GAN_HPARAMS[generator], GAN_EPOCHS[generator])
        return cache[generator]

    return get


@pytest.fixture(params=["cnn", "dcrnn"])
def gan(request, gans) -> Job:
    return gans(request.param)


@pytest.fixture(scope="module")
def primers(vae_job, pieces) -> list[np.ndarray]:
    """The opening 20 frames of each piece (longer than a segment)."""
    meta = vae_job.meta
    out = [contract.primer_steps(p, meta, 20) for p in pieces]
    assert all(p.shape == (20, KEYS) for p in out)
    return out


# --- calls of the exported signatures -------------------------------------------------------------

def vae_generate(loaded, primers, steps, seeds, threshold=0.0, temperature=1.0) -> np.ndarray:
    n = len(steps)
    return loaded.signatures["generate"](
        primer=tf.constant(np.stack(primers), tf.float32),
        num_steps=tf.constant(steps, tf.int32),
        temperature=tf.constant([temperature] * n, tf.float32),
        threshold=tf.constant([threshold] * n, tf.float32),
        seed=tf.constant(seeds, tf.int64))["frames"].numpy()


def vae_interpolate(loaded, a, b, points, seeds, threshold=0.0) -> np.ndarray:
    n = len(points)
    return loaded.signatures["interpolate"](
        a=tf.constant(np.stack(a), tf.float32), b=tf.constant(np.stack(b), tf.float32),
        num_points=tf.constant(points, tf.int32), temperature=tf.constant([1.0] * n),
        threshold=tf.constant([threshold] * n), seed=tf.constant(seeds, tf.int64))[
        "frames"].numpy()


def gan_generate(loaded, steps, forms, seeds, threshold=0.0, temperature=1.0) -> np.ndarray:
    n = len(steps)
    return loaded.signatures["generate"](
        num_steps=tf.constant(steps, tf.int32), form=tf.constant(forms, tf.string),
        temperature=tf.constant([temperature] * n, tf.float32),
        threshold=tf.constant([threshold] * n, tf.float32),
        seed=tf.constant(seeds, tf.int64))["frames"].numpy()


def segments(frames: np.ndarray) -> list[np.ndarray]:
    """[n, keys] → its segments of SEGMENT frames."""
    return [frames[k:k + SEGMENT] for k in range(0, len(frames), SEGMENT)]


# === vae ==========================================================================================

def test_vae_metrics_csv_anneals_beta_and_elbo_is_recon_plus_kl(vae_job):
    rows = read_csv(vae_job.job / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    # beta = final beta (1.0) x min(1, epoch / anneal_epochs (2))
    assert [float(r["beta"]) for r in rows] == [0.0, 0.5, 1.0]
    for r in rows:
        recon, kl, elbo, loss, beta = (float(r[k]) for k in ("recon", "kl", "elbo", "loss",
                                                             "beta"))
        assert recon > 0 and kl >= 0
        assert elbo == pytest.approx(recon + kl, rel=1e-5)
        # free_bits 0: the loss weighs the whole KL by the epoch's beta
        assert loss == pytest.approx(recon + beta * kl, rel=1e-5)


def test_kl_annealing_weight_per_epoch():
    model = vae.build(data_lib.DataSpec("pianoroll"),
                      {**vae.DEFAULTS, "latent": 4, "units": 8, "beta": 2.0}, SEGMENT)
    annealing = vae.KLAnnealing(4)
    annealing.set_model(model)
    assert [annealing.weight(e) for e in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    annealing.on_epoch_begin(1)
    assert float(model.beta.numpy()) == 0.5
    logs = {}
    annealing.on_epoch_end(1, logs)
    assert logs == {"beta": 0.5}
    no_ramp = vae.KLAnnealing(0)
    no_ramp.set_model(model)
    assert no_ramp.weight(0) == 2.0
    (own,) = MODELS["vae"].callbacks({**vae.DEFAULTS, "anneal_epochs": 3})
    assert isinstance(own, vae.KLAnnealing) and own.anneal_epochs == 3


@pytest.fixture(scope="module")
def built_vae(vae_job):
    """A freshly built vae (latent 4) with beta 1, and real training segments."""
    keras.utils.set_random_seed(0)
    model = vae.build(data_lib.DataSpec("pianoroll"),
                      {**vae.DEFAULTS, "latent": 4, "units": 8, "head": "keys"}, SEGMENT)
    model.beta.assign(1.0)
    return model, vae_job.training_windows("vae")[:6]


def objective_and_recon_gradients(model, frames, seed=5):
    """The gradients of `_objective`'s loss and of the mean reconstruction NLL alone, both on the
    same posterior sample, with respect to the log-variance head."""
    weights = model.log_var.trainable_weights
    tf.random.set_seed(seed)
    with tf.GradientTape() as tape:
        loss, values = model._objective(frames)
    total = tape.gradient(loss, weights)
    tf.random.set_seed(seed)
    with tf.GradientTape() as tape:
        recon, _ = model.losses_of(frames)
        recon = tf.reduce_mean(recon)
    alone = tape.gradient(recon, weights)
    return loss, values, recon, total, alone


def test_free_bits_floor_the_penalised_kl(built_vae):
    model, frames = built_vae
    try:
        model.free_bits = 100.0  # nats per dimension: far above this KL
        loss, values, recon, total, alone = objective_and_recon_gradients(model, frames)
        assert float(values["recon"]) == pytest.approx(float(recon), rel=1e-6)
        # every dimension sits below the floor: the penalty is latent x free_bits
        assert float(loss) == pytest.approx(float(values["recon"]) + 4 * 100.0, rel=1e-6)
        assert 0 < float(values["kl"]) < 4 * 100.0
        assert float(values["elbo"]) == pytest.approx(float(values["recon"] + values["kl"]),
                                                      rel=1e-6)
        # ... and its gradient is nothing: the KL under the floor is not penalised
        for g, r in zip(total, alone):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-5, atol=1e-7)
        model.free_bits = 0.0
        loss, values, _, total, alone = objective_and_recon_gradients(model, frames)
        assert float(loss) == pytest.approx(float(values["recon"] + values["kl"]), rel=1e-6)
        assert any(not np.allclose(g.numpy(), r.numpy(), rtol=1e-3, atol=1e-6)
                   for g, r in zip(total, alone))
    finally:
        model.free_bits = 0.0


def test_kl_per_dimension_known_values():
    mean = tf.constant([[0.0, 1.0, 0.0]])
    log_var = tf.constant([[0.0, 0.0, np.log(2.0)]], tf.float32)
    np.testing.assert_allclose(vae.kl_per_dimension(mean, log_var).numpy(),
                               [[0.0, 0.5, 0.5 * (2.0 - 1.0 - np.log(2.0))]], rtol=1e-6)


def test_model_keras_reloads_with_the_same_reconstruction(vae_job):
    model = vae_job.model
    assert isinstance(model, vae.MusicVAE)
    assert (model.keys, model.segment, model.latent, model.units) == (KEYS, SEGMENT, 4, 8)
    assert (model.final_beta, model.free_bits, model.walk) == (1.0, 0.0, 0.8)
    x = vae_job.training_windows("vae")[:4]
    served = vae_job.loaded.signatures["serving_default"](context=tf.constant(x))
    assert served["latent"].shape == (4, 4) and served["probs"].shape == (4, SEGMENT, KEYS)
    np.testing.assert_allclose(tf.sigmoid(model(x)).numpy(), served["probs"].numpy(),
                               rtol=1e-5, atol=1e-6)
    mean, _ = model.encode(x)
    np.testing.assert_allclose(mean.numpy(), served["latent"].numpy(), rtol=1e-5, atol=1e-6)
    # different segments, different codes
    assert not np.allclose(served["latent"].numpy()[0], served["latent"].numpy()[1])


def test_vae_metadata_and_signatures(vae_job):
    meta = vae_job.meta
    assert (meta["model"], meta["representation"], meta["window"], meta["keys"]) == \
        ("vae", "pianoroll", SEGMENT, KEYS)
    assert meta["inputs"] == "primer,num_steps,temperature,threshold,seed"
    assert meta["conditional"] == 0
    signatures = vae_job.loaded.signatures
    assert {"serving_default", "generate", "metadata", "interpolate",
            "log_likelihood"} <= set(signatures)
    assert set(signatures["interpolate"].structured_input_signature[1]) == \
        {"a", "b", "num_points", "temperature", "threshold", "seed"}
    assert set(signatures["serving_default"].structured_outputs) == {"latent", "probs"}


def test_vae_generate_shape_values_and_seeds(vae_job, primers):
    loaded, primer = vae_job.loaded, primers[0]
    steps = 21  # one segment and 5 frames of the next
    first = vae_generate(loaded, [primer], [steps], [3])
    assert first.shape == (1, steps, KEYS) and first.dtype == np.float32
    assert set(np.unique(first)) <= {0.0, 1.0} and first.sum() > 0
    np.testing.assert_array_equal(first, vae_generate(loaded, [primer], [steps], [3]))
    assert not np.array_equal(first, vae_generate(loaded, [primer], [steps], [4]))
    # a threshold decides every key: deterministic given the seed
    sharp = vae_generate(loaded, [primer], [steps], [3], threshold=0.5)
    assert set(np.unique(sharp)) <= {0.0, 1.0}
    np.testing.assert_array_equal(sharp, vae_generate(loaded, [primer], [steps], [3],
                                                      threshold=0.5))
    assert not np.array_equal(sharp, first)


def test_vae_generate_rows_are_independent_and_masked(vae_job, primers):
    loaded = vae_job.loaded
    both = vae_generate(loaded, [primers[0], primers[1]], [21, 5], [3, 8])
    assert both.shape == (2, 21, KEYS)
    np.testing.assert_array_equal(both[0], vae_generate(loaded, [primers[0]], [21], [3])[0])
    np.testing.assert_array_equal(both[1, :5], vae_generate(loaded, [primers[1]], [5], [8])[0])
    assert not both[1, 5:].any()  # past its own num_steps


def test_vae_generate_is_the_eager_decoder(vae_job, primers):
    """The exported loop and `vae.generate` run eagerly on the reloaded Keras model
    (the family's `sample`) give the same frames."""
    spec = data_lib.spec_of(vae_job.job / "data")
    for seed, steps in ((4, 37), (9, 16)):
        eager = MODELS["vae"].sample(vae_job.model, spec, primers[2], steps, 1.0, seed, SEGMENT)
        np.testing.assert_array_equal(
            eager, vae_generate(vae_job.loaded, [primers[2]], [steps], [seed])[0])


def test_walk_0_makes_segments_independent_of_the_primer(vae_job, vae_walk0, primers):
    a, b = primers[0], primers[1]
    assert not np.array_equal(a, b)
    assert vae_walk0.model.walk == 0.0
    independent = [vae_generate(vae_walk0.loaded, [p], [40], [6])[0] for p in (a, b)]
    np.testing.assert_array_equal(*independent)
    # with walk 0.8 the first latent keeps most of the primer's code; the tiny model's codes of two
    # chorale openings are close (its frames draw the same keys), so the second primer sounds
    # every key, far from any chorale
    walked = [vae_generate(vae_job.loaded, [p], [40], [6])[0] for p in (a, np.ones_like(b))]
    assert not np.array_equal(*walked)


def test_walk_steps():
    previous = tf.constant([[1.0, -2.0]])
    noise = tf.constant([[0.5, 0.25]])
    temperature = tf.constant([2.0])
    np.testing.assert_allclose(vae.walk(previous, noise, 0.0, temperature), [[1.0, 0.5]])
    np.testing.assert_allclose(vae.walk(previous, noise, 1.0, temperature), [[1.0, -2.0]])
    np.testing.assert_allclose(vae.walk(previous, noise, 0.6, temperature),
                               [[0.6 + 0.8 * 1.0, -1.2 + 0.8 * 0.5]], rtol=1e-6)
    # about a mean, with the noise through a Cholesky factor: mean + rho (z - mean) + ...
    mean, scale = tf.constant([1.0, 1.0]), tf.constant([[2.0, 0.0], [1.0, 0.5]])
    np.testing.assert_allclose(vae.walk(previous, noise, 0.0, temperature, mean, scale),
                               [[1.0 + 2.0 * 1.0, 1.0 + 2.0 * (0.5 + 0.125)]], rtol=1e-6)
    np.testing.assert_allclose(vae.walk(previous, noise, 1.0, temperature, mean, scale),
                               [[1.0, -2.0]], rtol=1e-6)


def test_the_walk_draws_from_the_training_codes_moments(built_vae):
    """`track_posterior` moves the moments towards the batch posteriors' mixture (mean, and
    E[z z^T] = the means' outer products + their variances); `latent_prior` is the Gaussian
    with those moments, which generate's walk draws from."""
    model, _ = built_vae
    mean = tf.constant([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    log_var = tf.math.log(tf.constant([[0.5, 1.0, 1.0, 1.0], [1.5, 1.0, 1.0, 1.0]]))
    before = [v.numpy() for v in (model.posterior_mean, model.posterior_moment)]
    try:
        np.testing.assert_array_equal(before[0], np.zeros(4))  # a new model: the prior's
        np.testing.assert_array_equal(before[1], np.eye(4))
        model.track_posterior(mean, log_var, momentum=0.0)
        np.testing.assert_allclose(model.posterior_mean.numpy(), [2.0, 0.0, 1.0, 0.0])
        moment = np.array([[5.0 + 1.0, 0, 1.0, 0], [0, 1, 0, 0], [1.0, 0, 2.0 + 1, 0],
                           [0, 0, 0, 1]])
        np.testing.assert_allclose(model.posterior_moment.numpy(), moment, rtol=1e-6)
        centre, scale = model.latent_prior()
        covariance = moment - np.outer([2.0, 0.0, 1.0, 0.0], [2.0, 0.0, 1.0, 0.0])
        np.testing.assert_allclose(scale.numpy() @ scale.numpy().T,
                                   covariance + 1e-4 * np.eye(4), rtol=1e-5, atol=1e-6)
        model.track_posterior(mean, log_var, momentum=0.75)  # the same batch: no move
        np.testing.assert_allclose(model.posterior_moment.numpy(), moment, rtol=1e-6)
    finally:
        model.posterior_mean.assign(before[0])
        model.posterior_moment.assign(before[1])


def test_training_keeps_the_codes_moments_and_the_walk_draws_from_them(vae_job, built_vae):
    trained = vae_job.model  # loaded back from the job's model.keras
    assert not np.allclose(trained.posterior_moment.numpy(), np.eye(4))
    model, frames = built_vae  # untrained: its decoder reads the latent
    spec = data_lib.DataSpec("pianoroll")

    def walked():
        return MODELS["vae"].sample(model, spec, frames[0], 3 * SEGMENT, 1.0, 4, SEGMENT)

    from_prior = walked()
    try:
        model.posterior_mean.assign(np.full(4, 3.0))
        from_codes = walked()
    finally:
        model.posterior_mean.assign(np.zeros(4))
    assert not np.array_equal(from_codes, from_prior)


def test_interpolate_runs_from_a_to_b(vae_job, primers):
    loaded, a, b = vae_job.loaded, primers[0], primers[1]
    frames = vae_interpolate(loaded, [a], [b], [3], [5], threshold=0.5)
    assert frames.shape == (1, 3 * SEGMENT, KEYS)
    assert set(np.unique(frames)) <= {0.0, 1.0}
    first, middle, last = segments(frames[0])
    # the ends: a's and b's codes decoded greedily (each frame's keys above 0.5, fed back in)
    codes = {name: loaded.signatures["serving_default"](context=tf.constant(x[None]))["latent"]
             for name, x in (("a", a), ("b", b))}
    decoded = {name: vae_job.model.draw(z, tf.constant([1.0]), tf.constant([0.5]),
                                        tf.constant([5], tf.int64), 0).numpy()[0]
               for name, z in codes.items()}
    assert not np.array_equal(decoded["a"], decoded["b"])
    np.testing.assert_array_equal(first, decoded["a"])
    np.testing.assert_array_equal(last, decoded["b"])
    # the sampled blend: deterministic by seed
    sampled = vae_interpolate(loaded, [a], [b], [3], [5])
    np.testing.assert_array_equal(sampled, vae_interpolate(loaded, [a], [b], [3], [5]))
    assert not np.array_equal(sampled, vae_interpolate(loaded, [a], [b], [3], [6]))


def test_interpolate_rows_have_their_own_num_points(vae_job, primers):
    loaded, a, b = vae_job.loaded, primers[0], primers[1]
    both = vae_interpolate(loaded, [a, b], [b, a], [3, 2], [5, 5], threshold=0.5)
    assert both.shape == (2, 3 * SEGMENT, KEYS)
    np.testing.assert_array_equal(both[0], vae_interpolate(loaded, [a], [b], [3], [5],
                                                           threshold=0.5)[0])
    start, end, past = segments(both[1])
    row = segments(both[0])
    np.testing.assert_array_equal(start, row[2])  # b's code, from either end
    np.testing.assert_array_equal(end, row[0])
    assert not past.any()


INTERPOLATE_ERRORS = {
    "num_points 0": (dict(num_points=[0]), r"num_points must be >= 1"),
    "num_points per row": (dict(num_points=[3, 3]), r"num_points: one value per row"),
    # points are whole segments: at most max_steps (4096) frames' worth
    "too many points": (dict(num_points=[4096 // SEGMENT + 1]),
                        rf"num_points must be <= {4096 // SEGMENT} \(max_steps / segment\)"),
    "b per row": (dict(b=np.zeros((2, 16, KEYS), np.float32)), r"b: one row per a row"),
    "empty b": (dict(b=np.zeros((1, 0, KEYS), np.float32)), r"b is empty"),
    "temperature 0": (dict(temperature=[0.0]), r"temperature must be > 0 and <= 10"),
    "seed per row": (dict(seed=[1, 2]), r"seed: one value per row"),
}


@pytest.mark.parametrize("overrides, message", INTERPOLATE_ERRORS.values(),
                         ids=INTERPOLATE_ERRORS.keys())
def test_bad_interpolate_requests_are_invalid_argument_errors(vae_job, primers, overrides,
                                                              message):
    request = dict(a=primers[0][None], b=primers[1][None], num_points=[3], temperature=[1.0],
                   threshold=[0.0], seed=[1])
    request.update(overrides)
    dtypes = dict(a=tf.float32, b=tf.float32, num_points=tf.int32, temperature=tf.float32,
                  threshold=tf.float32, seed=tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        vae_job.loaded.signatures["interpolate"](**{k: tf.constant(v, dtypes[k])
                                                    for k, v in request.items()})


def test_slerp_endpoints_midpoint_and_the_parallel_fallback():
    a = tf.constant([[1.0, 0.0, 0.0], [1.0, 2.0, 2.0], [1.0, 2.0, 2.0]])
    b = tf.constant([[0.0, 3.0, 0.0], [2.0, 4.0, 4.0], [-1.0, -2.0, -2.0]])
    np.testing.assert_allclose(vae.slerp(a, b, tf.zeros([3])).numpy(), a.numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(vae.slerp(a, b, tf.ones([3])).numpy(), b.numpy(),
                               atol=1e-5)
    half = vae.slerp(a, b, tf.fill([3], 0.5)).numpy()
    # orthogonal: the weights are sin(pi/4) / sin(pi/2) for both
    np.testing.assert_allclose(half[0], [np.sqrt(0.5), 3 * np.sqrt(0.5), 0.0], rtol=1e-5)
    # parallel (b = 2a) and opposite (b = -a): linear interpolation
    np.testing.assert_allclose(half[1], [1.5, 3.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(half[2], [0.0, 0.0, 0.0], atol=1e-6)
    quarter = vae.slerp(a[1:2], b[1:2], tf.constant([0.25])).numpy()
    np.testing.assert_allclose(quarter[0], 0.75 * a.numpy()[1] + 0.25 * b.numpy()[1],
                               rtol=1e-6)
    assert np.isfinite(half).all()


def test_segment_of_takes_the_last_frames_or_pads_the_start():
    frames = tf.reshape(tf.range(1.0, 7.0), [1, 6, 1])
    np.testing.assert_array_equal(vae.segment_of(frames, 4).numpy()[0, :, 0],
                                  [3, 4, 5, 6])
    np.testing.assert_array_equal(vae.segment_of(frames, 8).numpy()[0, :, 0],
                                  [0, 0, 1, 2, 3, 4, 5, 6])


def test_log_likelihood_is_the_negative_elbo_per_frame(vae_job, primers):
    signature = vae_job.loaded.signatures["log_likelihood"]
    out = signature(frames=tf.constant(primers[0][None]))
    assert out["nll"].shape == (1, 20) and out["probs"].shape == (1, 20, KEYS)
    nll = out["nll"].numpy()
    assert np.isfinite(nll).all() and (nll > 0).all()
    # whole segments: each one's frames add up to its reconstruction NLL (decoding the posterior
    # mean) plus its KL
    model = vae_job.model
    x = vae_job.training_windows("vae")[:2]
    frames = np.concatenate([x[0], x[1]])[None]
    nll = signature(frames=tf.constant(frames))["nll"].numpy()[0]
    assert nll.shape == (2 * SEGMENT,)
    mean, log_var = model.encode(x)
    recon, kl = model.losses_of(x, z=mean)
    expected = recon.numpy() + tf.reduce_sum(kl, -1).numpy()
    np.testing.assert_allclose([nll[:SEGMENT].sum(), nll[SEGMENT:].sum()], expected, rtol=1e-4)


def test_evaluate_reports_the_vae_likelihood(vae_job, corpus, pieces, tmp_path):
    out = tmp_path / "eval"
    argv = ["--model", vae_job.path.parent, "--data", corpus, "--train-data", corpus,
            "--samples", 2, "--steps", 24, "--seed", 1, "--temperature", 0.5, "--out", out]
    assert evaluate.main([str(a) for a in argv]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metadata"]["model"] == "vae"
    like = report["likelihood"]
    assert set(like) == {"nll_per_frame", "nll_per_quarter", "frames", "precision", "recall",
                         "f1"}
    # every frame of every held-out piece, scored by the log_likelihood signature
    signature, meta = vae_job.loaded.signatures["log_likelihood"], vae_job.meta
    rolls = [contract.primer_steps(p, meta, length=10**9) for p in pieces]
    total = sum(float(signature(frames=tf.constant(r[None]))["nll"].numpy().sum())
                for r in rolls)
    assert like["frames"] == sum(len(r) for r in rolls)
    assert like["nll_per_frame"] > 0
    assert like["nll_per_frame"] == pytest.approx(total / like["frames"], rel=1e-5)
    assert len(report["generated_notes"]) == 2
    # blends between held-out openings (piece i to i + 1) at the report's temperature, their
    # ends scored against the primers
    blend = report["interpolation"]
    assert (blend["pairs"], blend["points"]) == (2, 5) and 0 <= blend["end_f1"] <= 1
    f1s = []
    for i in range(2):
        a, b = pieces[i % len(pieces)], pieces[(i + 1) % len(pieces)]
        frames = np.asarray(Composer(vae_job.path.parent).interpolate(
            a, b, 5, seed=1 + i, temperature=0.5).outputs["frames"])[0]
        for drawn, piece in ((frames[:SEGMENT], a), (frames[-SEGMENT:], b)):
            target = contract.primer_steps(piece, meta)[-SEGMENT:]
            f1s.append(2 * (drawn[-len(target):] * target).sum()
                       / max(drawn[-len(target):].sum() + target.sum(), 1))
    assert blend["end_f1"] == pytest.approx(np.mean(f1s))


def test_request_helpers_refuse_what_the_vae_does_not_take(vae_job, primers, gans):
    meta = vae_job.meta
    with pytest.raises(InputError, match=r"^--form: vae does not take a form \(wgan_gp does\)"):
        contract.generate_inputs(primers[0], meta, 16, form="AB")
    with pytest.raises(InputError, match=r"^--key: vae is not conditional"):
        contract.generate_inputs(primers[0], meta, 16, key="C")
    inputs = contract.interpolate_inputs(primers[0], primers[1], meta, 3, threshold=0.5, seed=2)
    assert {k: v.shape for k, v in inputs.items()} == {
        "a": (1, 20, KEYS), "b": (1, 20, KEYS), "num_points": (1,), "temperature": (1,),
        "threshold": (1,), "seed": (1,)}
    with pytest.raises(InputError, match=r"^--interpolate: wgan_gp has no interpolate "
                                         r"signature \(it has generate, metadata, "
                                         r"serving_default\)$"):
        contract.interpolate_inputs(primers[0], primers[1], gans("cnn").meta, 3)


def test_to_piece_keeps_the_vae_primer(vae_job, primers):
    meta = vae_job.meta
    inputs = contract.generate_inputs(primers[0], meta, 16, seed=1)
    outputs = vae_job.loaded.signatures["generate"](**{k: tf.constant(v)
                                                       for k, v in inputs.items()})
    piece, primer_end = contract.to_piece(primers[0], outputs, meta)
    assert primer_end == 20 / 4
    frames = np.concatenate([primers[0], outputs["frames"].numpy()[0]])
    expected = pianoroll.roll_to_piece(pianoroll.from_frames(frames, "active"), 4, 120.0)
    assert notes_of(piece) == notes_of(expected)


# === wgan_gp ======================================================================================

@pytest.mark.parametrize("generator", ["cnn", "dcrnn"])
def test_wgan_metrics_csv(gans, generator):
    rows = read_csv(gans(generator).job / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(GAN_EPOCHS[generator]))
    assert {"d_loss", "g_loss", "wasserstein", "penalty"} <= set(rows[0])
    for r in rows:
        d, w, p = float(r["d_loss"]), float(r["wasserstein"]), float(r["penalty"])
        assert p >= 0 and np.isfinite(float(r["g_loss"]))
        # the critic's loss: -(Wasserstein estimate) + 10 x the gradient penalty
        assert d == pytest.approx(-w + 10.0 * p, rel=1e-4, abs=1e-5)


def build_tiny_gan(**hparams):
    """A wgan_gp of noise 4 and 8 filters over SEGMENT frames, its defaults changed by
    `hparams`."""
    return wgan_gp.build(data_lib.DataSpec("pianoroll"),
                         {**wgan_gp.DEFAULTS, "noise": 4, "filters": 8, **hparams}, SEGMENT)


@pytest.fixture(scope="module")
def tiny_gan():
    keras.utils.set_random_seed(0)
    return build_tiny_gan()


def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared(tiny_gan):
    """Non-negative kernels and positive biases on non-negative inputs keep every leaky ReLU in
    its linear part: the critic is w.x + c, its gradient w everywhere, the penalty
    (||w|| - 1)^2 whatever the mixing weights."""
    model = tiny_gan
    draw = np.random.default_rng(1)
    saved = [layer.get_weights() for layer in model.c_layers]
    try:
        for layer in model.c_layers:
            weights = layer.get_weights()
            if weights:
                kernel, bias = weights
                layer.set_weights([np.abs(draw.normal(0, 0.05, kernel.shape)).astype(np.float32),
                                   np.full(bias.shape, 0.1, np.float32)])
        eye = np.eye(SEGMENT * KEYS, dtype=np.float32).reshape(-1, SEGMENT, KEYS)
        zero = model.critic(np.zeros((1, SEGMENT, KEYS), np.float32)).numpy()[0, 0]
        w = model.critic(eye).numpy()[:, 0] - zero
        x = draw.random((3, SEGMENT, KEYS)).astype(np.float32)
        np.testing.assert_allclose(model.critic(x).numpy()[:, 0],
                                   x.reshape(3, -1) @ w + zero, rtol=1e-4)  # linear indeed
        assert abs(np.linalg.norm(w) - 1) > 0.5
        real = (draw.random((4, SEGMENT, KEYS)) < 0.1).astype(np.float32)
        fake = model.generate(tf.constant(draw.normal(size=(4, 4)), tf.float32)).numpy()
        for seed in (1, 2):
            tf.random.set_seed(seed)
            penalty = float(model._gradient_penalty(tf.constant(real), tf.constant(fake)))
            assert penalty == pytest.approx((np.linalg.norm(w) - 1) ** 2, rel=1e-4)
    finally:
        for layer, weights in zip(model.c_layers, saved):
            layer.set_weights(weights)


def test_binary_fakes_are_draws_with_the_gradient_of_the_probabilities(tiny_gan):
    """`fakes=drawn` (the default): the critic reads keys drawn from the generator's probabilities,
    and the generator's gradient is the one its probabilities would get (straight through the
    draw)."""
    model = tiny_gan
    assert model.fakes == "drawn"
    weights = tf.constant(np.random.default_rng(3).normal(size=(SEGMENT, KEYS)), tf.float32)
    g_vars = model._weights(model.g_layers)

    def through(make):
        tf.random.set_seed(5)  # the same noise both times: drawn first, before the keys
        with tf.GradientTape() as tape:
            out = make()
            score = tf.reduce_sum(out * weights)
        return out.numpy(), tape.gradient(score, g_vars)

    fake, grads = through(lambda: model._fake(
        model.generate(tf.random.normal([3, model.noise]), training=True)))
    probs, expected = through(lambda: model.generate(tf.random.normal([3, model.noise]),
                                                     training=True))
    keys = np.round(fake)  # 0 or 1, up to the rounding of p + (key - p)
    np.testing.assert_allclose(fake, keys, atol=1e-6)
    assert fake.shape == (3, SEGMENT, KEYS) and set(np.unique(keys)) == {0.0, 1.0}
    assert 0.2 < keys.mean() / probs.mean() < 5  # drawn with the probabilities
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-7)
    assert wgan_gp.WGANGP.from_config(model.get_config()).fakes == "drawn"


def test_xla_trains_as_the_graph_and_the_same_seed_trains_the_same_gan():
    """`xla`: the training step compiled by XLA computes what TensorFlow's graph computes (the
    same losses, up to float rounding, with the same numbers in place of the random draws, as
    XLA's random bits are its own); with its draws, the same seed gives the same losses (every
    draw is stateless, seeded by the model's generator; checked in the graph, where compiling
    costs less)."""
    x = (np.random.default_rng(7).random((2, 8, SEGMENT, KEYS)) < 0.05).astype(np.float32)

    def fixed_draws():
        """Numbers in [0, 1), other ones at each place the step draws (noise, the keys'
        uniforms, mixing weights), the same in both compilations of the step."""
        places = itertools.count(1)

        def draw(op, shape):
            at = tf.range(tf.reduce_prod(shape), dtype=tf.float32) + 1000.0 * next(places)
            return tf.reshape(tf.math.floormod(tf.sin(at * 12.9898) * 43758.5453, 1.0), shape)
        return draw

    def losses(xla, fixed=False):
        keras.utils.set_random_seed(4)
        model = build_tiny_gan(critic_steps=1, xla=xla)
        if fixed:
            model._draw = fixed_draws()
        return [model.train_on_batch(batch, np.zeros(8, np.float32), return_dict=True)
                for batch in x]

    graph, compiled = losses(False, fixed=True), losses(True, fixed=True)
    for a, b in zip(graph, compiled):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    assert losses(False) == losses(False)  # the draws: the model's seed generator, no other


def test_threshold_fakes_are_the_keys_past_one_half_and_generate_cuts_there():
    """`fakes=threshold`: the critic reads the keys past 0.5, with the probabilities' gradient;
    `generate` then sounds those keys (threshold 0 asks for the model's own cut)."""
    keras.utils.set_random_seed(0)
    model = build_tiny_gan(fakes="threshold")
    z = tf.constant(np.random.default_rng(4).normal(size=(3, 4)), tf.float32)
    g_vars = model._weights(model.g_layers)
    with tf.GradientTape(persistent=True) as tape:
        p = model.generate(z)
        fake = model._fake(p)
        cut, plain = tf.reduce_sum(fake * 2.0), tf.reduce_sum(p * 2.0)
    np.testing.assert_allclose(fake.numpy(), (p.numpy() > 0.5).astype(np.float32), atol=1e-6)
    for g, e in zip(tape.gradient(cut, g_vars), tape.gradient(plain, g_vars)):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-7)
    rows = (tf.constant([SEGMENT]), tf.constant(["A"]), tf.constant([1.0]), tf.constant([0.0]),
            tf.constant([3], tf.int64))
    z = rng.normal_tf(rows[4], tf.constant([0]), 1, 4)
    np.testing.assert_array_equal(wgan_gp.generate(model, *rows).numpy(),
                                  (model.generate(z).numpy() > 0.5).astype(np.float32))
    assert wgan_gp.WGANGP.from_config(model.get_config()).fakes == "threshold"


def test_both_fakes_show_the_critic_the_drawn_keys_beside_the_probabilities():
    """`fakes=both`: the critic reads a fake as the drawn keys and the probabilities side by
    side (channels), a real segment as its keys twice, and the step trains on that."""
    keras.utils.set_random_seed(0)
    model = build_tiny_gan(fakes="both", critic_steps=1, xla=False)
    p = model.generate(tf.constant(np.random.default_rng(4).normal(size=(3, 4)), tf.float32))
    fake = model._fake(p).numpy()
    assert fake.shape == (3, SEGMENT, 2 * KEYS)
    keys = np.round(fake[..., :KEYS])
    np.testing.assert_allclose(fake[..., :KEYS], keys, atol=1e-6)
    assert set(np.unique(keys)) == {0.0, 1.0}
    np.testing.assert_allclose(fake[..., KEYS:], p.numpy(), atol=1e-7)
    real = (np.random.default_rng(5).random((8, SEGMENT, KEYS)) < 0.05).astype(np.float32)
    np.testing.assert_array_equal(model._real(real).numpy(), np.concatenate([real, real], -1))
    logs = model.train_on_batch(real, np.zeros(8, np.float32), return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    assert wgan_gp.WGANGP.from_config(model.get_config()).fakes == "both"


def test_voice_keys_split_a_roll_top_voice_first_bass_last():
    """The top voice takes the highest key, the bass the lowest, the inner voices the next
    highest; fewer keys rest the inner voices, more lose their inner keys."""
    frames = np.zeros((6, 12), np.float32)
    for row, keys in enumerate([[], [5], [2, 9], [1, 4, 7], [0, 3, 6, 9], [0, 2, 4, 6, 8, 10]]):
        frames[row, keys] = 1
    got = wgan_gp.voice_keys(tf.constant(frames[None]), 4).numpy()[0]
    assert got.tolist() == [[-1, -1, -1, -1], [5, -1, -1, -1], [9, -1, -1, 2], [7, 4, -1, 1],
                            [9, 6, 3, 0], [10, 8, 6, 0]]
    assert wgan_gp.voice_keys(tf.constant(frames), 2).numpy().tolist() == [
        [-1, -1], [5, -1], [9, 2], [7, 1], [9, 0], [10, 0]]


def test_voices_output_writes_a_softmax_per_voice_and_the_critic_reads_each_voice():
    """`output=voices`: each voice a softmax over the keys and a rest; a fake is one key (or
    rest) drawn per voice, with the probabilities' gradient; a real segment is split into
    voices; the step (compiled by XLA, the default) trains on that, and the model saves its
    output."""
    keras.utils.set_random_seed(0)
    model = build_tiny_gan(output="voices", voices=4, critic_steps=1, xla=True)
    z = tf.constant(np.random.default_rng(4).normal(size=(3, 4)), tf.float32)
    p = model.probabilities(z).numpy()
    assert p.shape == (3, SEGMENT, 4, KEYS + 1)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.generate(z).numpy(),
                               1 - np.prod(1 - p[..., :KEYS], 2), rtol=1e-5, atol=1e-7)

    weights = tf.constant(np.random.default_rng(3).normal(size=(SEGMENT, 4 * KEYS)), tf.float32)
    g_vars = model._weights(model.g_layers)
    with tf.GradientTape(persistent=True) as tape:
        p = model.probabilities(z, training=True)
        fake = model._fake(p)
        drawn, soft = tf.reduce_sum(fake * weights), tf.reduce_sum(model._channels(p) * weights)
    assert fake.shape == (3, SEGMENT, 4 * KEYS)
    voices = np.round(fake.numpy()).reshape(3, SEGMENT, 4, KEYS)
    np.testing.assert_allclose(fake.numpy(), voices.reshape(fake.shape), atol=1e-6)
    assert set(np.unique(voices)) == {0.0, 1.0} and voices.sum(-1).max() == 1  # a key or a rest
    for g, e in zip(tape.gradient(drawn, g_vars), tape.gradient(soft, g_vars)):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-7)

    real = (np.random.default_rng(5).random((8, SEGMENT, KEYS)) < 0.05).astype(np.float32)
    split = model._real(tf.constant(real)).numpy().reshape(8, SEGMENT, 4, KEYS)
    expected = wgan_gp.voice_keys(tf.constant(real), 4).numpy()
    np.testing.assert_array_equal(split.argmax(-1)[split.max(-1) > 0], expected[expected >= 0])
    logs = model.train_on_batch(real, np.zeros(8, np.float32), return_dict=True)
    assert all(np.isfinite(v) for v in logs.values())
    again = wgan_gp.WGANGP.from_config(model.get_config())
    assert (again.writes, again.voices, again.min_p) == ("voices", 4, 0.5)
    with pytest.raises(InputError, match="voices=1"):
        build_tiny_gan(output="voices", voices=1)


def test_voices_generate_draws_a_key_per_voice_as_the_numpy_reference():
    """`generate` with `output=voices`: per segment, the noise of its letter, then one uniform
    per voice and frame picks the voice's key (or rest) from its probabilities past `min_p`
    times its likeliest, or the likeliest where a threshold is given; checked against NumPy,
    draw for draw."""
    keras.utils.set_random_seed(1)
    model = build_tiny_gan(output="voices", voices=3)
    seed = tf.constant([9], tf.int64)

    def reference(temperature, threshold):
        rows = []
        for letter in (0, 1, 0):  # form ABA
            z = rng.normal_tf(seed, tf.constant([letter]), 1, 4) * temperature
            p = model.probabilities(z).numpy()[0]  # [SEGMENT, 3, KEYS + 1]
            if threshold > 0:
                choice = p.argmax(-1)
            else:
                kept = np.cumsum(np.where(p < model.min_p * p.max(-1, keepdims=True), 0, p), -1)
                u = rng.uniform_np(seed.numpy(), letter, 0, SEGMENT * 3)[0].reshape(SEGMENT, 3)
                choice = (kept <= u[..., None] * kept[..., -1:]).sum(-1)
            roll = np.zeros((SEGMENT, KEYS + 1), np.float32)
            np.put_along_axis(roll, choice, 1.0, -1)
            rows.append(roll[:, :KEYS])
        return np.concatenate(rows)

    for temperature, threshold in ((1.0, 0.0), (2.0, 0.0), (1.0, 0.5)):
        got = wgan_gp.generate(model, tf.constant([3 * SEGMENT]), tf.constant(["ABA"]),
                               tf.constant([temperature]), tf.constant([threshold]), seed)
        expected = reference(temperature, threshold)
        assert 0 < expected.sum() and expected.sum(-1).max() <= 3
        np.testing.assert_array_equal(got.numpy()[0], expected)


def test_categorical_never_draws_a_class_of_weight_0():
    w = tf.constant([[0.0, 0.5, 0.0, 0.5, 0.0]] * 4)
    u = tf.constant([0.0, 0.49, 0.5, 0.9999999])
    assert wgan_gp.categorical(w, u).numpy().tolist() == [1, 1, 3, 3]
    p = tf.constant([[0.2, 0.3, 0.5]])
    assert wgan_gp.floored_voices(p, 5.0).numpy().tolist() == [[0.0, 0.0, 0.5]]  # at most 1


def test_batch_std_shows_the_critic_a_batch_of_copies():
    """`batch_std`: the features' spread over the batch joins the critic as a channel, so the
    same segment scores differently among copies of itself than among other segments."""
    h = np.random.default_rng(5).normal(size=(4, 3, 2)).astype(np.float32)
    column = wgan_gp.batch_std(tf.constant(h)).numpy()
    assert column.shape == (4, 3, 1)
    np.testing.assert_allclose(column, np.full((4, 3, 1), h.std(axis=0).mean()), rtol=1e-5)
    keras.utils.set_random_seed(0)
    model = build_tiny_gan(batch_std=True)
    draw = np.random.default_rng(6)
    segments = (draw.random((4, SEGMENT, KEYS)) < 0.1).astype(np.float32)
    copies = np.repeat(segments[:1], 4, axis=0)
    among_others = model.critic(tf.constant(segments)).numpy()[0, 0]
    among_copies = model.critic(tf.constant(copies)).numpy()
    assert np.ptp(among_copies) < 1e-5 and abs(among_copies[0, 0] - among_others) > 1e-4
    assert wgan_gp.WGANGP.from_config(model.get_config()).batch_std


def test_floored_drops_the_unlikely_keys_and_keeps_each_frames_count():
    p = np.array([[[0.01, 0.04, 0.5, 0.45], [0.02, 0.2, 0.2, 0.0], [0.9, 0.9, 0.03, 0.0]]],
                 np.float32)
    out = wgan_gp.floored(tf.constant(p), 0.05).numpy()
    np.testing.assert_allclose(out[0, 0], np.array([0, 0, 0.5, 0.45]) / 0.95, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0, 0.21, 0.21, 0], rtol=1e-6)
    np.testing.assert_allclose(out[0, 2], [0.915, 0.915, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(wgan_gp.floored(tf.constant(p), 0.0).numpy(), p)
    silent = np.zeros((1, 2, 4), np.float32)
    np.testing.assert_array_equal(wgan_gp.floored(tf.constant(silent), 0.05).numpy(), silent)


def test_generate_never_sounds_a_key_below_the_floor(tiny_gan):
    """With `floor` 1, every key below it: silence, whatever the seed; with floor 0, the
    generator's own draws."""
    model, default = tiny_gan, tiny_gan.floor
    rows = (tf.constant([40]), tf.constant(["AB"]), tf.constant([1.0]), tf.constant([0.0]),
            tf.constant([3], tf.int64))
    try:
        model.floor = 1.0
        assert wgan_gp.generate(model, *rows).numpy().sum() == 0
        model.floor = 0.0
        assert wgan_gp.generate(model, *rows).numpy().sum() > 0
    finally:
        model.floor = default


def test_gradient_penalty_uses_each_example_own_gradient(gans):
    """On a trained (non-linear) critic: the mean over examples of (||grad of the critic at
    the example's own mix|| - 1)^2, recomputed one example at a time with the same mixes."""
    model = gans("cnn").model
    x = gans("cnn").training_windows("wgan_gp")
    real = x[:4]
    fake = model.generate(tf.constant(np.random.default_rng(2).normal(size=(4, 4)),
                                      tf.float32)).numpy()
    state = model.seeds.state.numpy()
    penalty = float(model._gradient_penalty(tf.constant(real), tf.constant(fake)))
    model.seeds.state.assign(state)  # the same mixing weights again
    eps = model._draw(keras.random.uniform, [4, 1, 1]).numpy()
    mixed = eps * real + (1 - eps) * fake
    norms = []
    for example in mixed:
        point = tf.constant(example[None])
        with tf.GradientTape() as tape:
            tape.watch(point)
            score = model.critic(point, training=True)
        norms.append(np.linalg.norm(tape.gradient(score, point).numpy()))
    assert len(set(np.round(norms, 6))) > 1
    assert penalty == pytest.approx(np.mean((np.asarray(norms) - 1) ** 2), rel=1e-4)


def test_seq_len_not_a_multiple_of_8_is_an_input_error(corpus, tmp_path):
    rc, out, err = run_task(["--model", "wgan_gp", "--data", corpus, "--epochs", 1,
                             "--seq-len", 12, "--hparams", "noise=4,filters=8",
                             "--sample-every", 0, "--job-dir", tmp_path / "job",
                             "--export-dir", tmp_path / "exports"])
    assert rc == 2
    assert err.strip().splitlines() == ["error: --seq-len: wgan_gp needs a multiple of 8, not 12"]
    assert not (tmp_path / "job").exists() and not (tmp_path / "exports").exists()


def test_dcrnn_repeat_must_divide_the_segment():
    with pytest.raises(InputError, match=r"^--hparams repeat=3 must divide --seq-len 16$"):
        wgan_gp.build(data_lib.DataSpec("pianoroll"),
                      {**wgan_gp.DEFAULTS, "generator": "dcrnn", "repeat": 3, "noise": 4,
                       "units": 8}, SEGMENT)


def test_dcrnn_starts_from_states_the_noise_sets():
    """From zero states the first frame came out as a burst over the keyboard: both LSTMs start
    from states the noise sets, and with those at zero the generator is the seed's."""
    layer = wgan_gp.DCRNN(steps=2, repeat=3, units=5)
    z = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    frames = layer(z).numpy()
    assert frames.shape == (2, 6, 5)
    for weight in layer.start.weights:
        weight.assign(tf.zeros_like(weight))
    # Keras's LSTMs start from zero states when given none
    seed = layer.rnn_b(tf.repeat(layer.rnn_a(tf.repeat(z[:, None], 2, 1)), 3, 1)).numpy()
    np.testing.assert_allclose(layer(z).numpy(), seed, atol=1e-6)
    assert np.abs(frames - seed).max() > 1e-2


def test_wgan_metadata_and_signatures(gan):
    meta = gan.meta
    assert meta["inputs"] == GAN_INPUTS
    assert (meta["model"], meta["representation"], meta["window"], meta["keys"]) == \
        ("wgan_gp", "pianoroll", SEGMENT, KEYS)
    signatures = gan.loaded.signatures
    assert {"serving_default", "generate", "metadata"} <= set(signatures)
    assert "interpolate" not in signatures and "log_likelihood" not in signatures
    assert set(signatures["generate"].structured_input_signature[1]) == \
        set(GAN_INPUTS.split(","))


def test_form_ABA_repeats_the_first_segment(gan):
    frames = gan_generate(gan.loaded, [3 * SEGMENT], ["ABA"], [1])
    assert frames.shape == (1, 3 * SEGMENT, KEYS)
    assert set(np.unique(frames)) <= {0.0, 1.0} and frames.sum() > 0
    a, b, a_again = segments(frames[0])
    np.testing.assert_array_equal(a, a_again)
    assert not np.array_equal(a, b)


def test_form_letters_in_a_batch(gan):
    """Row 0 has no form (every segment new), row 1 the form "A" (one segment, over and over),
    row 2 "AAB"; same seed in every row: a letter's segment is the same in each."""
    frames = gan_generate(gan.loaded, [3 * SEGMENT] * 3, ["", "A", "AAB"], [4, 4, 4])
    new = segments(frames[0])
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(new[i], new[j]), (i, j)
    only_a = segments(frames[1])
    np.testing.assert_array_equal(only_a[0], only_a[1])
    np.testing.assert_array_equal(only_a[0], only_a[2])
    aab = segments(frames[2])
    np.testing.assert_array_equal(aab[0], aab[1])
    assert not np.array_equal(aab[0], aab[2])
    np.testing.assert_array_equal(aab[0], only_a[0])
    np.testing.assert_array_equal(new[0], only_a[0])  # "" starts at letter A (index 0)
    np.testing.assert_array_equal(new[1], aab[2])  # segment 1 of "" is letter B
    # each row as it comes alone (a lone "" is test_empty_form_alone_makes_every_segment_new)
    for row, form in ((1, "A"), (2, "AAB")):
        alone = gan_generate(gan.loaded, [3 * SEGMENT], [form], [4])[0]
        np.testing.assert_array_equal(alone, frames[row])


def test_empty_form_alone_makes_every_segment_new(gans):
    frames = gan_generate(gans("cnn").loaded, [3 * SEGMENT], [""], [4])
    new = segments(frames[0])
    assert not np.array_equal(new[0], new[1]) and not np.array_equal(new[1], new[2])


@pytest.mark.parametrize("form", ["aba", "A1B", "AB C", "A-B", "É"])
def test_forms_of_other_than_capital_letters_are_invalid(gans, form):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"form: capital letters A-Z, one per segment, e\.g\. ABCAB"):
        gan_generate(gans("cnn").loaded, [SEGMENT], [form], [1])


def test_form_needs_one_per_row(gans):
    signature = gans("cnn").loaded.signatures["generate"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"form: one value per row"):
        signature(num_steps=tf.constant([16]), form=tf.constant(["A", "B"]),
                  temperature=tf.constant([1.0]), threshold=tf.constant([0.0]),
                  seed=tf.constant([1], tf.int64))


def test_gan_generate_seeds_and_per_row_num_steps(gan):
    loaded = gan.loaded
    first = gan_generate(loaded, [40], ["ABC"], [2])
    np.testing.assert_array_equal(first, gan_generate(loaded, [40], ["ABC"], [2]))
    assert not np.array_equal(first, gan_generate(loaded, [40], ["ABC"], [3]))
    both = gan_generate(loaded, [40, 20], ["ABC", "ABC"], [2, 2])
    assert both.shape == (2, 40, KEYS)
    np.testing.assert_array_equal(both[0], first[0])
    np.testing.assert_array_equal(both[1, :20], first[0, :20])
    assert not both[1, 20:].any()


def test_gan_generate_decodes_the_noise_of_each_letter(gan):
    """With a threshold, segment k is the generator's output for letter k's noise (x the
    temperature), as the serving_default signature gives it, above the threshold."""
    seed, temperature = 6, 0.7
    frames = gan_generate(gan.loaded, [2 * SEGMENT], ["BA"], [seed], threshold=0.5,
                          temperature=temperature)[0]
    for k, letter in enumerate([1, 0]):
        noise = rng.normal_tf(tf.constant([seed], tf.int64), letter, 1, 4) * temperature
        probs = gan.loaded.signatures["serving_default"](noise=noise)["probs"].numpy()[0]
        np.testing.assert_array_equal(frames[k * SEGMENT:(k + 1) * SEGMENT], probs > 0.5)


def test_gan_generate_is_the_eager_decoder(gan):
    spec = data_lib.spec_of(gan.job / "data")
    eager = MODELS["wgan_gp"].sample(gan.model, spec, None, 40, 1.0, 9, SEGMENT)  # form ABAC
    np.testing.assert_array_equal(eager, gan_generate(gan.loaded, [40], ["ABAC"], [9])[0])


def test_serving_default_maps_noise_to_key_probabilities(gan):
    noise = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    probs = gan.loaded.signatures["serving_default"](noise=tf.constant(noise))["probs"].numpy()
    assert probs.shape == (3, SEGMENT, KEYS)
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs, gan.model.generate(tf.constant(noise)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(probs[0], probs[1])


def test_form_letters():
    letters = wgan_gp.form_letters(tf.constant(["", "AB", "ABCAB"]), 6).numpy()
    assert letters.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 0]]
    assert wgan_gp.form_letters(tf.constant(["C"]), 2).numpy().tolist() == [[2, 2]]


def test_to_piece_of_a_gan_leaves_the_primer_out(gans, primers):
    loaded = gans("cnn").loaded
    meta = metadata(loaded)
    inputs = contract.generate_inputs(primers[0], meta, 32, seed=5, form=" aba ")
    assert inputs["form"].tolist() == ["ABA"]  # trimmed and upper-cased
    assert set(inputs) == set(GAN_INPUTS.split(","))
    outputs = loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})
    piece, primer_end = contract.to_piece(primers[0], outputs, meta)
    assert primer_end == 0.0
    frames = outputs["frames"].numpy()[0]
    grid = meta["steps_per_quarter"]  # the family's: one step a quarter note
    expected = pianoroll.roll_to_piece(pianoroll.from_frames(frames, meta["encoding"]), grid,
                                       120.0)
    assert len(piece) > 0 and notes_of(piece) == notes_of(expected)
    assert piece.end <= 32 / grid + 1e-9


def test_generate_cli_with_a_form(gans, corpus, tmp_path, capsys):
    job = gans("cnn")
    out = tmp_path / "gan.mid"
    rc = generate.main(["--model", str(job.path.parent), "--form", "ABAB", "--steps", "64",
                        "--seed", "3", "--primer", str(corpus / "piece0.mid"), "--out",
                        str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"from {job.path} → {out}" in captured.out
    frames = gan_generate(job.loaded, [64], ["ABAB"], [3])
    a, b, a_again, b_again = segments(frames[0])
    np.testing.assert_array_equal(a, a_again)
    np.testing.assert_array_equal(b, b_again)
    meta = metadata(job.loaded)
    expected = pianoroll.roll_to_piece(pianoroll.from_frames(frames[0], meta["encoding"]),
                                       meta["steps_per_quarter"], 120.0)
    (back,) = read_file(out)
    assert len(back) > 0 and notes_of(back) == notes_of(expected)


def test_generate_cli_form_on_the_vae_is_one_line(vae_job, corpus, tmp_path, capsys):
    out = tmp_path / "vae.mid"
    rc = generate.main(["--model", str(vae_job.path.parent), "--form", "AB", "--steps", "16",
                        "--primer", str(corpus / "piece0.mid"), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().splitlines() == ["error: --form: vae does not take a form (wgan_gp does)"]
    assert not out.exists()


def test_generate_cli_without_a_form(gans, corpus, tmp_path, capsys):
    out = tmp_path / "gan.mid"
    rc = generate.main(["--model", str(gans("cnn").path.parent), "--steps", "32", "--seed", "3",
                        "--primer", str(corpus / "piece0.mid"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert len(read_file(out)[0]) > 0


def test_a_nade_head_scores_each_key_given_the_keys_below_it(tmp_path):
    """`head=nade`: the exported likelihood of a segment is, frame by frame, the NLL of its keys
    one by one given the keys below them (the NADE's conditionals in a loop) at the posterior
    mean, plus the KL spread over the frames; its blends and samples are draws by seed."""
    keys, segment = 12, 8
    spec = data_lib.DataSpec("pianoroll", keys=keys)
    hp = {**MODELS["vae"].defaults, "latent": 4, "units": 8, "head": "nade", "nade_hidden": 6}
    model = MODELS["vae"].build(spec, hp, segment)
    frames = (np.random.default_rng(3).random((16, segment, keys)) < 0.3).astype(np.float32)
    model.fit(frames, frames, batch_size=8, epochs=1, verbose=0,
              callbacks=MODELS["vae"].callbacks(hp))
    loaded = tf.saved_model.load(str(export.export(model, "vae", spec, segment, tmp_path)))
    nll = loaded.signatures["log_likelihood"](frames=tf.constant(frames[:2]))["nll"].numpy()

    mean, log_var = model.encode(frames[:2])
    kl = vae.kl_per_dimension(mean, log_var).numpy().sum(-1)
    h = model.decoder_outputs(mean, frames[:2])
    b, c = model.visible_bias(h).numpy(), model.hidden_bias(h).numpy()
    W, V = model.nade.W.numpy(), model.nade.V.numpy()
    expected = np.array([[kl[r] / segment - nade_log_likelihood(b[r, t], c[r, t], W, V,
                                                                  frames[r, t])
                          for t in range(segment)] for r in range(2)])
    np.testing.assert_allclose(nll, expected, rtol=1e-4)

    def blend(seed):
        return loaded.signatures["interpolate"](
            a=tf.constant(frames[:1]), b=tf.constant(frames[1:2]), num_points=tf.constant([3]),
            temperature=tf.constant([1.0]), threshold=tf.constant([0.0]),
            seed=tf.constant([seed], tf.int64))["frames"].numpy()

    assert blend(5).shape == (1, 3 * segment, keys) and set(np.unique(blend(5))) == {0.0, 1.0}
    np.testing.assert_array_equal(blend(5), blend(5))
    assert not np.array_equal(blend(5), blend(6))
