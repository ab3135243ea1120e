"""The seam: a model family defined here, registered at run time, trains, exports, serves over
gRPC, generates and evaluates through the shared paths, with no other file knowing of it."""

from __future__ import annotations

import json
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from evaluation import evaluate
from preprocessing.readers import read_file
from serving import client as serving_client
from serving.versions import training_info
from tests.conftest import scrape, start_server, stop_server, two_voices, write_midi_file
from trainer import decoders, generate, rng, task
from trainer.export import base
from trainer.models import MODELS, Family

NAME = "toy_markov"


def _build(spec, hp, seq_len=None):
    """Each frame's keys from the frame before: a first-order Markov chain over frames."""
    frames = keras.Input((None, spec.keys), name="frames")
    logits = keras.layers.Dense(spec.keys, name="frame")(
        keras.layers.Dense(hp["units"], activation="relu")(frames))
    model = keras.Model(frames, logits, name=NAME)
    model.compile(keras.optimizers.Adam(hp["learning_rate"]),
                  keras.losses.BinaryCrossentropy(from_logits=True))
    return model


class _Export(base.Exported):
    """Its own in-graph loop and signatures, from the shared base's pieces."""

    def main_specs(self):
        return self.roll_generate_specs()

    def family_signatures(self):
        return {"generate": base.signature(self._generate, self.main_specs()),
                "serving_default": base.signature(self._next, self.roll_specs("context")),
                "log_likelihood": base.signature(self._likelihood, self.roll_specs("frames"))}

    def _generate(self, primer, num_steps, temperature, threshold, seed):
        with tf.control_dependencies(self.check(tf.shape(primer)[0], num_steps,
                                                temperature=temperature, threshold=threshold,
                                                seed=seed)):
            steps = tf.reduce_max(num_steps)

            def body(i, frame, out):
                logits = self.model(frame[:, None], training=False)[:, 0]
                x = decoders.bernoulli(logits, temperature, threshold,
                                       rng.uniform_tf(seed, i, 0, self.spec.keys))
                return i + 1, x, out.write(i, x)

            *_, out = tf.while_loop(lambda i, *_: i < steps, body,
                                    (0, primer[:, -1], tf.TensorArray(tf.float32, steps)))
        return {"frames": base.keep_rows(decoders.batch_major(out.stack()), num_steps)}

    def _next(self, context):
        return {"probs": tf.sigmoid(self.model(context[:, -1:], training=False)[:, 0])}

    def _likelihood(self, frames):
        return self.roll_nll(frames[:, 1:], self.model(frames[:, :-1], training=False))


TOY = types.ModuleType(NAME)
TOY.REPRESENTATIONS = ("pianoroll",)
TOY.DEFAULTS = dict(units=16, learning_rate=1e-2)
TOY.build = _build
TOY.Export = _Export


@pytest.fixture(scope="module")
def registered():
    MODELS[NAME] = Family(TOY)
    yield
    del MODELS[NAME]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-corpus")
    for k in range(12):
        write_midi_file(folder / f"piece{k:02d}.mid", two_voices(k))
    return folder


@pytest.mark.slow
def test_a_family_registered_at_run_time_goes_through_every_shared_path(
        registered, corpus, tmp_path, capsys):
    saved = tmp_path / "saved"
    assert task.main(["--model", NAME, "--data", str(corpus), "--epochs", "2", "--seq-len", "8",
                      "--batch-size", "8", "--sample-every", "1", "--sample-steps", "8",
                      "--job-dir", str(tmp_path / "job"), "--export-dir", str(saved)]) == 0
    assert sorted((tmp_path / "job" / "samples").glob("*.mid"))  # the training callback's
    assert (saved / NAME / "1" / "saved_model.pb").is_file()

    # generate in process, from the SavedModel
    out = tmp_path / "local.mid"
    assert generate.main(["--model", str(saved / NAME), "--primer",
                          str(sorted(corpus.glob("*.mid"))[0]), "--steps", "16", "--seed", "3",
                          "--out", str(out)]) == 0
    local = read_file(out)[0]

    # serve it and ask over gRPC: the same piece for the same seed
    server = start_server(saved / "models.config", tmp_path / "logs")
    try:
        served = tmp_path / "served.mid"
        assert serving_client.main(["--server", server.grpc, "--model", NAME, "--primer",
                                    str(sorted(corpus.glob("*.mid"))[0]), "--steps", "16",
                                    "--seed", "3", "--out", str(served)]) == 0
        # the export kept its training notes: the server measures what it served against them
        assert sum(training_info(saved / NAME / "1")["notes"]["pitch"]["counts"]) > 0
        metrics = scrape(server)
        labels = (("model", NAME), ("version", "1"))
        assert metrics[("serving_drift_pieces", labels)] == 1
        assert metrics[("serving_drift_wasserstein", (("feature", "pitch"), *labels))] >= 0
    finally:
        stop_server(server.proc)
    remote = read_file(served)[0]
    np.testing.assert_array_equal(local.pitch, remote.pitch)
    np.testing.assert_allclose(local.start, remote.start)

    # evaluate it: likelihood from its own log_likelihood signature, samples from generate
    report = tmp_path / "eval"
    assert evaluate.main(["--model", str(saved / NAME), "--data", str(corpus),
                          "--train-data", str(corpus), "--samples", "2", "--steps", "16",
                          "--out", str(report)]) == 0
    results = json.loads((report / "report.json").read_text())
    assert results["metadata"]["model"] == NAME and len(results["generated_notes"]) == 2
    assert np.isfinite(results["likelihood"]["nll_per_frame"])


def test_an_export_trained_on_other_data_says_what_it_replaced(registered, tmp_path, capsys):
    from trainer.config import Config
    from trainer.data import DataSpec
    from trainer.export import export_trained, training_info

    spec = DataSpec("pianoroll")
    model = _build(spec, TOY.DEFAULTS)
    mine = Config(model=NAME, data=("my_midi/",), seq_len=4, export_dir=str(tmp_path))
    bach = Config(model=NAME, data=("corpus:bach",), seq_len=4, export_dir=str(tmp_path))
    first = export_trained(mine, spec, model)["export"]
    assert training_info(first)["data"] == ["my_midi/"]
    export_trained(mine, spec, model)  # same data: nothing to say
    assert "replaces" not in capsys.readouterr().err
    export_trained(bach, spec, model)
    assert capsys.readouterr().err.strip() == (
        f"{tmp_path / NAME}: version 3 (data: corpus:bach) replaces version 2 (data: my_midi/) "
        "as the newest, the one served and generated from; pass --export-name to keep both")


def test_version_folders_are_ascii_numbers_that_fit_int64(tmp_path):
    # BUG (probe, issue 11): "²" passed str.isdigit and a 20-digit folder broke gRPC status
    from serving.versions import version_numbers

    for name in ("1", "7", "²", "99999999999999999999", "3a", ".staging-1"):
        (tmp_path / name).mkdir()
    (tmp_path / "7" / "saved_model.pb").write_bytes(b"")
    assert version_numbers(tmp_path) == [1, 7]
    assert version_numbers(tmp_path, saved_models_only=True) == [7]

