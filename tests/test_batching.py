"""Request batching (serving/batching.py) and Prometheus metrics (serving/metrics.py) of the local
server: the Batcher alone with a fake model (merging, the timeout, the queue's capacity, a bad
request among good ones, trimming), then a real `python -m serving.server` on the session zoo's
models, whose concurrent requests must answer exactly what each alone answers in process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from evaluation import metrics as mm
from serving import contract
from serving.batching import (
    DEFAULT_PARAMETERS,
    Batcher,
    BatchingParameters,
    read_parameters,
)
from serving.client import Client, ClientError
from serving.metrics import DEFAULT_CONFIG, read_monitoring_path
from serving.models import ServingError
from serving.versions import INFO, training_info
from tests.conftest import REPO, scrape, start_server, stop_server
from tests.test_serving import normalized, rest_call
from tests.zoo import SEQ_LEN
from trainer import export, training
from trainer.models import MODELS

QUEUE = ("m", 1, "generate")


# --- the Batcher alone, with a fake model ----------------------------------------------------

class FakeModel:
    """Doubles x; a row below 0 fails the whole call, as a model's assertion would. Its
    `tokens` output has max(steps) columns, zero past each row's own steps."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls, self.gate = [], gate

    def __call__(self, inputs):
        self.calls.append(len(inputs["x"]))
        if self.gate is not None:
            self.gate.wait(30)
        x, steps = inputs["x"], inputs["steps"]
        if np.any(x < 0):
            raise ServingError("INVALID_ARGUMENT", "x must be >= 0")
        keep = np.arange(steps.max())[None] < steps[:, None]
        return {"y": 2 * x, "tokens": np.where(keep, x[:, None] + 1, 0)}


def request(x, steps=3):
    return {"x": np.asarray(x, np.int64), "steps": np.full(len(x), steps, np.int64)}


def submit(batcher, model, inputs, key="k"):
    steps = int(inputs["steps"].max())
    return batcher.run(QUEUE, key, model, inputs, len(inputs["x"]), steps,
                       frozenset({"tokens"}), cost=steps)


def wait_until(condition, seconds: float = 10.0) -> None:
    """Polls `condition` until it holds or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def submit_by(batcher, model, inputs, deadline: float):
    """`submit` with the caller's deadline, `deadline` seconds from now."""
    return batcher.run(QUEUE, "k", model, inputs, len(inputs["x"]), 3, frozenset({"tokens"}),
                       3, time.monotonic() + deadline)


def concurrently(batcher, model, requests, key="k"):
    """Each request from its own thread, all started together; its outputs or its error."""
    start = threading.Barrier(len(requests))

    def one(inputs):
        start.wait()
        try:
            return submit(batcher, model, inputs, key)
        except ServingError as exc:
            return exc

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


@pytest.fixture
def make_batcher():
    made = []

    def make(max_batch_steps=None, **params):
        batcher = Batcher(BatchingParameters(**{"num_batch_threads": 1, **params}),
                          max_batch_steps=max_batch_steps)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def test_concurrent_requests_merge_and_each_gets_its_own_rows(make_batcher):
    batcher, model = make_batcher(max_batch_size=6, batch_timeout_micros=30_000_000), FakeModel()
    began = time.monotonic()
    answers = concurrently(batcher, model, [request([1]), request([2, 3]), request([4, 5, 6])])
    assert time.monotonic() - began < 10  # full at 6 rows: no wait for the 30 s timeout
    assert model.calls == [6]
    assert [a["y"].tolist() for a in answers] == [[2], [4, 6], [8, 10, 12]]


def test_a_merged_call_keeps_to_max_batch_steps(make_batcher):
    # every row of a merged call runs its longest row's steps: 3 rows x 10 steps fit in 30,
    # a fourth row would not
    batcher = make_batcher(max_batch_size=16, batch_timeout_micros=1_000_000, max_batch_steps=30)
    model = FakeModel()
    answers = concurrently(batcher, model, [request([1], 2), request([2], 10), request([3], 5),
                                            request([4], 10)])
    assert sorted(model.calls) == [1, 3]
    assert [a["y"].tolist() for a in answers] == [[2], [4], [6], [8]]


def test_timeout_flushes_a_partial_batch(make_batcher):
    batcher, model = make_batcher(max_batch_size=16, batch_timeout_micros=300_000), FakeModel()
    began = time.monotonic()
    assert submit(batcher, model, request([7]))["y"].tolist() == [14]
    assert 0.3 <= time.monotonic() - began < 10
    assert model.calls == [1]


def test_an_open_batch_takes_requests_while_the_threads_are_busy(make_batcher):
    batcher, gate = make_batcher(max_batch_size=16, batch_timeout_micros=0), threading.Event()
    model = FakeModel(gate)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(submit, batcher, model, request([1]))
        wait_until(lambda: model.calls)  # the one thread is busy
        rest = [pool.submit(submit, batcher, model, request([k])) for k in (2, 3, 4)]
        wait_until(lambda: batcher.depths().get(QUEUE) == 3)
        gate.set()
        assert first.result()["y"].tolist() == [2]
        assert [f.result()["y"].tolist() for f in rest] == [[4], [6], [8]]
    assert model.calls == [1, 3]


def test_a_request_over_max_batch_size_runs_alone(make_batcher):
    batcher, model = make_batcher(max_batch_size=2, batch_timeout_micros=0), FakeModel()
    assert submit(batcher, model, request([1, 2, 3, 4, 5]))["y"].tolist() == [2, 4, 6, 8, 10]
    assert model.calls == [5]


def test_different_keys_do_not_merge(make_batcher):
    batcher, model = make_batcher(max_batch_size=4, batch_timeout_micros=200_000), FakeModel()
    start = threading.Barrier(2)

    def one(key):
        start.wait()
        return submit(batcher, model, request([1]), key)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, ["a", "b"]))
    assert sorted(model.calls) == [1, 1]


def test_a_failing_request_does_not_fail_its_neighbours(make_batcher):
    batcher, model = make_batcher(max_batch_size=3, batch_timeout_micros=30_000_000), FakeModel()
    reruns = []
    batcher.on_rerun = reruns.append
    good, bad, other = concurrently(batcher, model, [request([1]), request([-1]),
                                                     request([5])])
    assert good["y"].tolist() == [2] and other["y"].tolist() == [10]
    assert isinstance(bad, ServingError) and bad.code == "INVALID_ARGUMENT"
    assert bad.message == "x must be >= 0"
    assert model.calls[0] == 3 and sorted(model.calls[1:]) == [1, 1, 1]
    assert reruns == [QUEUE]


def test_a_full_queue_refuses_at_once(make_batcher):
    batcher, gate = make_batcher(max_batch_size=1, batch_timeout_micros=0,
                                 max_enqueued_batches=1), threading.Event()
    model = FakeModel(gate)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(submit, batcher, model, request([1]))
        wait_until(lambda: model.calls)
        waiting = pool.submit(submit, batcher, model, request([2]))
        wait_until(lambda: batcher.depths() == {QUEUE: 1})
        began = time.monotonic()
        with pytest.raises(ServingError) as info:
            submit(batcher, model, request([3]))
        assert time.monotonic() - began < 1
        assert info.value.code == "UNAVAILABLE"  # TF Serving's code for a full batch queue
        assert "queue of model m version 1 signature generate is full" in info.value.message
        assert "\n" not in info.value.message
        gate.set()
        assert running.result()["y"].tolist() == [2] and waiting.result()["y"].tolist() == [4]


def test_the_time_axis_is_trimmed_to_each_requests_own_steps(make_batcher):
    batcher, model = make_batcher(max_batch_size=3, batch_timeout_micros=30_000_000), FakeModel()
    answers = concurrently(batcher, model, [request([1], 2), request([2], 5), request([3], 4)])
    assert model.calls == [3]
    assert [a["tokens"].tolist() for a in answers] == [[[2, 2]], [[3] * 5], [[4] * 4]]


def test_close_runs_the_requests_waiting_and_refuses_new_ones():
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=30_000_000,
                                         num_batch_threads=1))
    model = FakeModel()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(submit, batcher, model, request([4]))
        wait_until(lambda: batcher.depths().get(QUEUE))
        batcher.close()
        assert waiting.result()["y"].tolist() == [8]
    with pytest.raises(ServingError, match="stopping") as info:
        submit(batcher, model, request([1]))
    assert info.value.code == "UNAVAILABLE"


def test_a_request_whose_deadline_passed_in_the_queue_is_not_run(make_batcher):
    batcher, gate = make_batcher(max_batch_size=1, batch_timeout_micros=0), threading.Event()
    model = FakeModel(gate)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(submit, batcher, model, request([1]))
        wait_until(lambda: model.calls)
        late = pool.submit(submit_by, batcher, model, request([2]), 0.05)
        wait_until(lambda: batcher.depths() == {QUEUE: 1})
        time.sleep(0.1)  # its deadline passes while the first request runs
        gate.set()
        assert running.result()["y"].tolist() == [2]
        with pytest.raises(ServingError, match="deadline passed after") as info:
            late.result()
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert model.calls == [1]  # the late request never reached the model
    assert batcher.depths() == {}


def test_of_a_merged_batch_only_the_requests_still_awaited_run(make_batcher):
    batcher, gate = make_batcher(max_batch_size=8, batch_timeout_micros=0), threading.Event()
    model = FakeModel(gate)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(submit, batcher, model, request([1]))
        wait_until(lambda: model.calls)
        late = pool.submit(submit_by, batcher, model, request([2]), 0.05)
        live = pool.submit(submit_by, batcher, model, request([3, 4]), 60)
        wait_until(lambda: batcher.depths() == {QUEUE: 2})
        time.sleep(0.1)
        gate.set()
        running.result()
        assert live.result()["y"].tolist() == [6, 8]
        with pytest.raises(ServingError, match="DEADLINE|deadline"):
            late.result()
    assert model.calls == [1, 2]  # the merged call ran the live request's two rows alone


# --- the config files ------------------------------------------------------------------------

def test_batching_parameters_file_is_read(tmp_path):
    params = read_parameters(DEFAULT_PARAMETERS)
    assert params == BatchingParameters(16, 20000, 64, 1, (1, 2, 4, 8, 16))
    partial = tmp_path / "partial.config"
    partial.write_text("max_batch_size { value: 4 }\n")
    assert read_parameters(partial) == BatchingParameters(max_batch_size=4)
    for text in ("max_batch_sise { value: 4 }", "max_batch_size { value: 0 }",
                 "num_batch_threads: 2"):
        partial.write_text(text)
        with pytest.raises(ValueError, match="partial.config"):
            read_parameters(partial)


def test_monitoring_config_file_is_read(tmp_path):
    assert read_monitoring_path(DEFAULT_CONFIG) == "/monitoring/prometheus/metrics"
    path = tmp_path / "monitoring.config"
    path.write_text("prometheus_config { enable: false }")
    assert read_monitoring_path(path) is None
    path.write_text("prometheus_config { enable: true path: '/metrics' }")
    assert read_monitoring_path(path) == "/metrics"
    path.write_text("prometheus_config { enabled: true }")
    with pytest.raises(ValueError, match="not a MonitoringConfig"):
        read_monitoring_path(path)


# --- a real server on the zoo's models ---------------------------------------------------------

SERVED = {"notes": ("attention_lstm", "notes"), "roll": ("lstm", "pianoroll")}
DRIFTING = "drifting"
OUTPUT = {"notes": "tokens", "roll": "frames", DRIFTING: "frames"}
TIMEOUT_MICROS = 300_000  # long enough that requests sent together merge on a loaded machine


@pytest.fixture(scope="module")
def served(zoo, tmp_path_factory):
    """EXPORT/{notes,roll}/1 from the zoo, their models.config, and name → Trained; and
    EXPORT/drifting/1, the roll model with its training notes' distributions kept as
    `trainer.task` keeps them (the zoo's exports have none)."""
    folder = tmp_path_factory.mktemp("batching") / "models"
    models = {name: zoo(*case) for name, case in SERVED.items()}
    for name, trained in models.items():
        shutil.copytree(trained.path, folder / name / "1")
    shutil.copytree(models["roll"].path, folder / DRIFTING / "1")
    data, spec = zoo.dataset("pianoroll")
    info = {"notes": training.note_reference(MODELS["lstm"], spec, data)}
    (folder / DRIFTING / "1" / INFO).parent.mkdir(exist_ok=True)
    (folder / DRIFTING / "1" / INFO).write_text(json.dumps(info))
    export.write_models_config(folder)
    return folder, models


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    """The server with batches of up to 16 rows, each waiting up to 0.3 s to fill."""
    logs = tmp_path_factory.mktemp("batching-logs")
    config = logs / "batching.config"
    config.write_text(f"max_batch_size {{ value: 16 }}\nbatch_timeout_micros {{ value: "
                      f"{TIMEOUT_MICROS} }}\nmax_enqueued_batches {{ value: 16 }}\n"
                      "num_batch_threads { value: 2 }\n")
    s = start_server(served[0] / "models.config", logs, "--batching-parameters-file",
                     str(config))
    yield s
    stop_server(s.proc)


def total(metrics: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in metrics.items()
               if n == name and labels.items() <= dict(ls).items())


def in_process(trained, inputs) -> np.ndarray:
    fn = trained.loaded.signatures["generate"]
    outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return normalized(outputs[OUTPUT["notes" if trained.rep == "notes" else "roll"]].numpy())


def send_together(server, calls) -> list:
    """calls: (name, inputs, "grpc" | "rest"), sent at once; each one's output or ClientError."""
    clients = {"grpc": Client(server.grpc, timeout=120), "rest": Client(rest=server.rest,
                                                                        timeout=120)}
    start = threading.Barrier(len(calls))

    def one(call):
        name, inputs, api = call
        start.wait()
        try:
            return normalized(clients[api].predict(name, "generate", inputs)[OUTPUT[name]])
        except ClientError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(one, calls))


def notes_inputs(trained, i, length, steps, seed, **settings):
    meta = {"window": SEQ_LEN, "representation": "notes", "inputs": "primer,num_steps,temperature,"
            "top_k,seed"}
    return contract.generate_inputs(trained.primer(i, length), meta, steps, seed=seed,
                                    **settings)


def roll_inputs(trained, i, length, steps, seed, **settings):
    meta = {"window": SEQ_LEN, "representation": "pianoroll",
            "inputs": "primer,num_steps,temperature,threshold,seed"}
    return contract.generate_inputs(trained.primer(i, length), meta, steps, seed=seed,
                                    **settings)


def test_concurrent_notes_requests_answer_as_alone(server, served):
    """Primers of 3 to 8 events (padded to the window by the client, so they merge), num_steps
    of 4 to 20, over gRPC and REST at once: each answer is what the model alone answers."""
    trained = served[1]["notes"]
    before = scrape(server)
    calls = [("notes", notes_inputs(trained, i, 3 + i % 6, 4 + 2 * i, seed=100 + i,
                                    temperature=0.7 + 0.1 * (i % 4), top_k=i % 3),
              "grpc" if i % 3 else "rest") for i in range(9)]
    answers = send_together(server, calls)
    for (_, inputs, _), answer in zip(calls, answers):
        assert not isinstance(answer, Exception), answer
        expected = in_process(trained, inputs)
        assert answer.shape == expected.shape == (1, int(inputs["num_steps"][0]))
        np.testing.assert_array_equal(answer, expected)
    after = scrape(server)
    labels = dict(model="notes", signature="generate", version="1")
    merged = (total(after, "serving_batch_requests_count", **labels)
              - total(after, "serving_batch_requests_bucket", le="1.0", **labels)) \
        - (total(before, "serving_batch_requests_count", **labels)
           - total(before, "serving_batch_requests_bucket", le="1.0", **labels))
    assert merged > 0, "no merged call"
    calls_made = total(after, "serving_batch_requests_count", **labels) \
        - total(before, "serving_batch_requests_count", **labels)
    assert calls_made < len(calls)


def test_concurrent_roll_requests_answer_as_alone(server, served):
    """Piano-roll primers of two lengths (never padded: they go into separate batches) and
    different num_steps and thresholds, at once."""
    trained = served[1]["roll"]
    before = scrape(server)
    calls = [("roll", roll_inputs(trained, i, 8 if i % 2 else 5, 3 + 3 * i, seed=7 + i,
                                  threshold=0.0 if i % 3 else 0.4), "grpc" if i % 2 else "rest")
             for i in range(6)]
    answers = send_together(server, calls)
    for (_, inputs, _), answer in zip(calls, answers):
        assert not isinstance(answer, Exception), answer
        expected = in_process(trained, inputs)
        assert answer.shape == expected.shape == (1, int(inputs["num_steps"][0]), 88)
        np.testing.assert_array_equal(answer, expected)
    after = scrape(server)
    labels = dict(model="roll", signature="generate")
    calls_made = total(after, "serving_batch_requests_count", **labels) \
        - total(before, "serving_batch_requests_count", **labels)
    assert 2 <= calls_made < len(calls)  # one batch per primer length, at least
    assert total(after, "serving_batch_reruns_total") == total(before, "serving_batch_reruns_total")


def test_a_bad_request_in_a_batch_gets_its_error_and_its_neighbours_their_music(server, served):
    trained = served[1]["notes"]
    before = scrape(server)
    calls = [("notes", notes_inputs(trained, i, 8, 6, seed=i), "grpc") for i in range(4)]
    calls[1] = ("notes", notes_inputs(trained, 1, 8, 6, seed=1, temperature=-1.0), "grpc")
    calls[3] = ("notes", {**notes_inputs(trained, 3, 8, 6, seed=3),
                          "primer": np.asarray([["C4|x|y"] * 8], object)}, "rest")
    answers = send_together(server, calls)
    assert isinstance(answers[1], ClientError)
    assert str(answers[1]) == "INVALID_ARGUMENT: temperature must be > 0 and <= 10"
    assert isinstance(answers[3], ClientError) and str(answers[3]).startswith("HTTP 400: primer")
    for k in (0, 2):
        np.testing.assert_array_equal(answers[k], in_process(trained, calls[k][1]))
    reruns = total(scrape(server), "serving_batch_reruns_total") \
        - total(before, "serving_batch_reruns_total")
    assert reruns >= 1


def test_metrics_count_requests_by_status_and_list_the_loaded_versions(server, served):
    trained = served[1]["notes"]
    before = scrape(server)
    client = Client(server.grpc, timeout=60)
    client.predict("notes", "generate", notes_inputs(trained, 0, 8, 2, seed=1))
    with pytest.raises(ClientError):
        client.predict("notes", "generate", notes_inputs(trained, 0, 8, 2, seed=1,
                                                         temperature=0.0))
    with pytest.raises(ClientError):
        client.predict("no-such-model", "generate", {})
    assert rest_call(server, "POST", "/v1/models/notes:predict",
                     {"signature_name": "nope", "inputs": {}})[0] == 404
    after = scrape(server)
    ok = dict(model="notes", version="1", signature="generate", api="grpc")
    assert total(after, "serving_requests_total", status="OK", **ok) == \
        total(before, "serving_requests_total", status="OK", **ok) + 1
    assert total(after, "serving_requests_total", status="INVALID_ARGUMENT", **ok) == \
        total(before, "serving_requests_total", status="INVALID_ARGUMENT", **ok) + 1
    # names the server does not have are not labels: one series for all of them
    unknown = total(after, "serving_requests_total", model="-", status="NOT_FOUND")
    assert unknown == total(before, "serving_requests_total", model="-", status="NOT_FOUND") + 1
    assert total(after, "serving_requests_total", model="notes", signature="-",
                 status="NOT_FOUND", api="rest") >= 1
    assert not any("no-such-model" in str(key) or "nope" in str(key) for key in after)
    assert total(after, "serving_request_latency_seconds_count", **ok) == \
        total(before, "serving_request_latency_seconds_count", **ok) + 2
    assert total(after, "serving_batch_size_count", model="notes") >= 1
    for name in SERVED:
        assert after[("serving_model_version_loaded", (("model", name), ("version", "1")))] == 1
    assert after[("serving_batch_queue_depth", (("model", "notes"), ("signature", "generate"),
                                                ("version", "1")))] == 0


def test_the_drift_gauge_measures_what_a_version_composed_against_its_training_notes(
        server, served):
    """W1 of the pitches and durations of the pieces `generate` served (primers left out)
    against the training notes the export keeps; versions without them have no series."""
    trained = served[1]["roll"]
    reference = training_info(served[0] / DRIFTING / "1")["notes"]
    requests = [roll_inputs(trained, i, 8, 12 + 4 * i, seed=i, temperature=1.5)
                for i in range(3)]
    answers = send_together(server, [(DRIFTING, inputs, "grpc") for inputs in requests[:2]])
    assert not any(isinstance(a, ClientError) for a in answers), answers
    Client(rest=server.rest, timeout=60).predict(DRIFTING, "generate", requests[2])
    fn = trained.loaded.signatures["generate"]
    meta = contract.metadata_from_outputs(
        trained.loaded.signatures["metadata"](**contract.METADATA_REQUEST))
    composed = [contract.composed_piece(fn(**{k: tf.constant(v) for k, v in r.items()}), meta)
                for r in requests]
    assert all(len(p) for p in composed)
    expected = mm.distribution_drift(reference, mm.note_distributions(composed))
    metrics = scrape(server)
    labels = (("model", DRIFTING), ("version", "1"))
    assert metrics[("serving_drift_pieces", labels)] == 3
    assert metrics[("serving_drift_silent_pieces", labels)] == 0
    for feature in ("pitch", "duration"):
        assert metrics[("serving_drift_wasserstein", (("feature", feature), *labels))] == \
            pytest.approx(expected[feature], rel=1e-6)
    assert not any(name.startswith("serving_drift") and ("model", "roll") in labels
                   for name, labels in metrics)


# --- a server with a queue of one batch of one row ---------------------------------------------

def test_queue_overflow_is_unavailable_over_grpc_and_503_over_rest(served, tmp_path):
    """A full queue answers at once, and the client says so (busy), not that the server is
    unreachable: through `serving.client.Client` over gRPC and REST, as an app would call."""
    config = tmp_path / "batching.config"
    config.write_text("max_batch_size { value: 1 }\nbatch_timeout_micros { value: 0 }\n"
                      "max_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n")
    s = start_server(served[0] / "models.config", tmp_path / "logs",
                     "--batching-parameters-file", str(config))
    try:
        trained = served[1]["notes"]
        inputs = notes_inputs(trained, 0, 8, 500, seed=1)  # slow: the queue stays full
        clients = [Client(s.grpc, timeout=120), Client(rest=s.rest, timeout=120)]

        def call(k):
            try:
                clients[k % 2].predict("notes", "generate", inputs)
                return "answered"
            except ClientError as exc:
                return str(exc)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(call, range(6)))
    finally:
        stop_server(s.proc)
    full = "batch queue of model notes version 1 signature generate is full"
    assert "answered" in answers, answers
    assert any(a.startswith("UNAVAILABLE: ") and full in a for a in answers[0::2]), answers  # gRPC
    assert any(a.startswith("HTTP 503: ") and full in a for a in answers[1::2]), answers  # REST
    assert all(a == "answered" or full in a and "\n" not in a for a in answers), answers


def test_no_batching_serves_each_request_alone(served, tmp_path):
    s = start_server(served[0] / "models.config", tmp_path / "logs", "--no-batching")
    try:
        trained = served[1]["roll"]
        calls = [("roll", roll_inputs(trained, i, 8, 2 + i, seed=i), "grpc") for i in range(3)]
        for (_, inputs, _), answer in zip(calls, send_together(s, calls)):
            np.testing.assert_array_equal(answer, in_process(trained, inputs))
        metrics = scrape(s)
        assert total(metrics, "serving_requests_total", model="roll", status="OK") == 3
        assert total(metrics, "serving_batch_requests_count") == 0
    finally:
        stop_server(s.proc)


def test_help_documents_batching_and_monitoring_flags():
    text = subprocess.run([sys.executable, "-m", "serving.server", "--help"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for flag in ("--enable-batching", "--no-batching", "--batching-parameters-file",
                 "--monitoring-config-file"):
        assert flag in flat
    assert "Batching is on by default" in flat
    assert str(Path("serving/config/batching.config")) in flat
