"""serving: the local TF Serving stand-in (`python -m serving.server`) and its client, end to end.

Everything is real: MIDI files written with mido, tiny models trained on them and exported with
`trainer.export` (the session's zoo: attention_lstm on notes, lstm on piano rolls, midinet on bars),
the server started once as a subprocess on 127.0.0.1 with free ports, and every request sent over
real gRPC (the client, or raw tensorflow-serving-api stubs) and real HTTP (the client, or urllib).
Also: the client CLI (in this process, and once as a subprocess), a new version appearing while
serving, SIGTERM, and the Dockerfile's TF Serving configs parsed as TF Serving's own protos.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from preprocessing.readers import read_file
from preprocessing.writers import write_midi
from serving import client as client_cli
from serving import contract
from serving.client import Client, ClientError
from serving.composer import Composer
from tests.conftest import (
    BASS,
    MELODY,
    Server,
    start_server,
    stop_server,
    write_midi_file,
)
from tests.zoo import SEQ_LEN, run_main
from trainer import export

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 64  # the server's --max-steps (the exports themselves allow 4096)
MAX_BYTES = 256 * 1024  # the server's --max-request-bytes (REST body and gRPC message)
SERVER_FLAGS = ("--poll-seconds", "0.5", "--max-steps", str(MAX_STEPS),
                "--max-request-bytes", str(MAX_BYTES))
STEPS = 16

# served name → (family, representation)
SERVED = {"notes": ("attention_lstm", "notes"), "roll": ("lstm", "pianoroll"),
          "bars": ("midinet", "bars")}
VERSIONED = "roll_v"  # a copy of `roll`, the one model whose versions change (test 4)
OUTPUT = {"notes": "tokens", "pianoroll": "frames", "bars": "bars"}
GENERATE_INPUTS = {"notes": {"primer", "num_steps", "temperature", "top_k", "seed"},
                   "pianoroll": {"primer", "num_steps", "temperature", "threshold", "seed"},
                   "bars": {"chords", "num_bars", "seed"}}
DEFAULT_INPUTS = {"notes": {"context"}, "pianoroll": {"context"},
                  "bars": {"chord", "previous", "seed"}}
META_KEYS = {"model", "representation", "steps_per_quarter", "encoding", "vocab_size",
             "max_duration", "max_shift", "chords", "keys", "window", "max_steps", "conditional",
             "inputs", "signatures"}


# --- fixtures: MIDI corpus → datasets → tiny trained models → an export folder → a server --------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def primer_midi(workdir) -> Path:
    """The primer every request continues: a real two-track MIDI file."""
    return write_midi_file(workdir / "primer.mid", [MELODY, BASS])


@pytest.fixture(scope="module")
def primer_piece(primer_midi):
    return read_file(primer_midi)[0]


class Served(dict):
    """Served name → the zoo's Trained model, and the export folder they are served from."""

    export_dir: Path


@pytest.fixture(scope="module")
def trained(zoo, workdir) -> Served:
    """The three served models from the session's zoo, copied to EXPORT/NAME/1, plus
    EXPORT/roll_v/1 (a copy of roll/1); models.config lists all four."""
    export_dir = workdir / "models"
    out = Served()
    out.export_dir = export_dir
    for name, case in SERVED.items():
        out[name] = zoo(*case)
        shutil.copytree(out[name].path, export_dir / name / "1")
    shutil.copytree(export_dir / "roll" / "1", export_dir / VERSIONED / "1")
    export.write_models_config(export_dir)
    out[VERSIONED] = out["roll"]
    return out


@pytest.fixture(scope="module")
def server(trained, workdir) -> Server:
    """The server, started once for the module on the export folder's models.config."""
    s = start_server(trained.export_dir / "models.config", workdir / "server-logs",
                     *SERVER_FLAGS)
    yield s
    stop_server(s.proc)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def status_stub(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def grpc_client(server) -> Client:
    return Client(server.grpc, timeout=60)


@pytest.fixture(scope="module")
def rest_client(server) -> Client:
    return Client(rest=server.rest, timeout=60)


@pytest.fixture(params=["grpc", "rest"])
def client(request, grpc_client, rest_client) -> Client:
    return grpc_client if request.param == "grpc" else rest_client


@pytest.fixture(scope="module")
def metas(grpc_client) -> dict[str, dict]:
    return {name: grpc_client.metadata(name) for name in SERVED}


@pytest.fixture(scope="module")
def primers(metas, primer_piece) -> dict:
    """The primer MIDI in each model's representation."""
    return {name: contract.primer_steps(primer_piece, metas[name]) for name in SERVED}


@pytest.fixture(scope="module")
def good(metas, primers):
    """`good(name, **settings)`: valid `generate` inputs for the primer (batch of 1)."""
    def make(name, steps=STEPS, **settings):
        return contract.generate_inputs(primers[name], metas[name], steps, **settings)
    return make


# --- helpers -------------------------------------------------------------------------------------

def normalized(value) -> np.ndarray:
    """Outputs of any transport comparable: strings as str, numbers as float64."""
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s),
                            otypes=[object])(value)
    return value.astype(np.float64)


def generated(name: str, outputs: dict) -> np.ndarray:
    return normalized(outputs[OUTPUT[SERVED.get(name, ("", "pianoroll"))[1]]])


def grpc_predict(stub, inputs: dict, name="notes", signature="generate", version=None,
                 label="", timeout=30):
    """A raw PredictRequest; values are arrays or ready TensorProtos."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = name, signature
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        proto = value if hasattr(value, "tensor_shape") else tf.make_tensor_proto(value)
        request.inputs[key].CopyFrom(proto)
    return stub.Predict(request, timeout=timeout)


def grpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def as_json(inputs: dict) -> dict:
    out = {}
    for key, value in inputs.items():
        value = np.asarray(value)
        out[key] = normalized(value).tolist() if value.dtype.kind in "OSU" else value.tolist()
    return out


def rest_call(server, method: str, path: str, body=None, timeout=30):
    """(status, parsed JSON body) of a raw request; (None, reason) when the server closed the
    connection without answering."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.rest + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text
    except (ConnectionError, http.client.HTTPException) as exc:
        return None, f"no response: {exc!r}"


def assert_serving(server, stub, good) -> None:
    """A good request still works over both transports."""
    response = grpc_predict(stub, good("notes", steps=2))
    assert tf.make_ndarray(response.outputs["tokens"]).shape == (1, 2)
    status, body = rest_call(server, "POST", "/v1/models/notes:predict",
                        {"signature_name": "generate", "inputs": as_json(good("notes", steps=2))})
    assert status == 200, body
    assert np.asarray(body["outputs"]["tokens"]).shape == (1, 2)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_listener():
    """A TCP port that accepts connections (backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def write_config_atomically(path: Path, config) -> None:
    tmp = path.with_suffix(".writing")
    tmp.write_text(text_format.MessageToString(config))
    os.replace(tmp, path)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (ClientError, grpc.RpcError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


# --- 1. end to end: MIDI primer in, MIDI out; determinism; gRPC == REST == in process -----------

def test_ready_line_lists_models_and_binds_localhost(server):
    assert sorted(server.models) == sorted([*SERVED, VERSIONED])
    assert server.grpc.startswith("127.0.0.1:") and int(server.grpc.rsplit(":", 1)[1]) > 0
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.rest)


@pytest.mark.parametrize("name", list(SERVED))
def test_midi_in_midi_out(client, name, primer_piece, tmp_path):
    result = Composer(client, model=name).generate(primer_piece, STEPS, seed=7)
    piece, primer_end = result.piece, result.primer_end
    path = write_midi(piece, tmp_path / f"{name}.mid")
    back = read_file(path)[0]
    assert len(back.pitch) > 0
    assert len(back.pitch) == len(piece.pitch)
    np.testing.assert_array_equal(np.sort(back.pitch), np.sort(piece.pitch))
    assert primer_end >= 0


@pytest.mark.parametrize("name", list(SERVED))
def test_same_seed_same_music_different_seed_different(client, name, good):
    first = generated(name, client.predict(name, "generate", good(name, seed=7)))
    again = generated(name, client.predict(name, "generate", good(name, seed=7)))
    other = generated(name, client.predict(name, "generate", good(name, seed=8)))
    np.testing.assert_array_equal(first, again)
    assert first.shape == other.shape
    if name != "bars":
        assert not np.array_equal(first, other)
        return
    # MidiNet's bars are the argmax of its generator: a one-epoch GAN can map every noise to
    # the same bars, so the seed is checked where it acts, the generator's probabilities
    chord = np.asarray(good(name)["chords"][0, :1], np.float32)
    previous = np.zeros((1, 16, 128), np.float32)

    def probs(seed):
        return client.predict(name, "serving_default", {
            "chord": chord, "previous": previous, "seed": np.asarray([seed], np.int64)})["probs"]

    np.testing.assert_array_equal(probs(7), probs(7))
    assert not np.array_equal(probs(7), probs(8))


@pytest.mark.parametrize("name", list(SERVED))
def test_generate_pieces_match_across_transports(grpc_client, rest_client, trained, name,
                                                 primer_piece):
    over_grpc, over_rest, in_process = (
        Composer(target, model=name).generate(primer_piece, STEPS, seed=11, temperature=0.9)
        for target in (grpc_client, rest_client, trained.export_dir))
    assert over_grpc.primer_end == over_rest.primer_end == in_process.primer_end
    for field in ("pitch", "start", "duration", "velocity"):
        np.testing.assert_array_equal(getattr(over_grpc.piece, field),
                                      getattr(over_rest.piece, field))
        np.testing.assert_array_equal(getattr(over_grpc.piece, field),
                                      getattr(in_process.piece, field))


@pytest.mark.parametrize("name", list(SERVED))
def test_grpc_rest_and_in_process_give_identical_outputs(grpc_client, rest_client, trained,
                                                         name, good):
    settings = {"bars": {}, "notes": dict(temperature=0.8, top_k=5),
                "roll": dict(temperature=1.2, threshold=0.0)}[name]
    inputs = good(name, seed=123, **settings)
    over_grpc = generated(name, grpc_client.predict(name, "generate", inputs))
    over_rest = generated(name, rest_client.predict(name, "generate", inputs))
    loaded = tf.saved_model.load(str(trained.export_dir / name / "1"))
    local = loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})
    in_process = generated(name, {k: v.numpy() for k, v in local.items()})
    assert over_grpc.shape[:2] == (1, STEPS)
    np.testing.assert_array_equal(over_grpc, in_process)
    np.testing.assert_array_equal(over_rest, in_process)


def test_rest_row_format_instances_matches_columnar(server, good):
    inputs = as_json(good("notes", seed=5))
    columnar = rest_call(server, "POST", "/v1/models/notes:predict",
                    {"signature_name": "generate", "inputs": inputs})
    rows = rest_call(server, "POST", "/v1/models/notes:predict",
                {"signature_name": "generate",
                 "instances": [{k: v[0] for k, v in inputs.items()}]})
    assert columnar[0] == rows[0] == 200, (columnar, rows)
    assert columnar[1] == rows[1]


# --- the client CLI: one run as a subprocess, the others in this process --------------------------

@pytest.fixture(scope="module")
def cli(server, primer_midi, workdir):
    """Runs every CLI case at once; name → (returncode, stdout, stderr, out folder)."""
    root = workdir / "cli"
    root.mkdir()
    wav = shutil.which("fluidsynth") is not None and any(
        os.path.exists(p) for p in ("/usr/share/sounds/sf2/FluidR3_GM.sf2",
                                    "/usr/share/sounds/sf2/default-GM.sf2",
                                    "/usr/share/soundfonts/default.sf2",
                                    os.environ.get("COMPOSER_SOUNDFONT", "/nonexistent")))
    common = ["--primer", str(primer_midi), "--steps", str(STEPS), "--seed", "7"]
    cases = {
        "grpc": ["--server", server.grpc, "--model", "notes", *common,
                 "--out", str(root / "grpc.mid"), *(["--wav", str(root / "grpc.wav")] * wav)],
        "rest": ["--rest", server.rest, "--model", "roll", *common,
                 "--out", str(root / "rest.mid")],
        "bars": ["--server", server.grpc, "--model", "bars", *common,
                 "--out", str(root / "bars.mid")],
        "info-grpc": ["--server", server.grpc, "--model", "notes", "--status", "--metadata"],
        "info-rest": ["--rest", server.rest, "--model", "roll", "--status", "--metadata"],
        "down": ["--server", f"127.0.0.1:{closed_port()}", "--model", "notes", "--status",
                 "--timeout", "5"],
        "unknown-model": ["--rest", server.rest, "--model", "nope", "--status"],
        "no-out": ["--server", server.grpc, "--model", "notes", *common],
        "out-is-a-folder": ["--server", server.grpc, "--model", "notes", *common,
                            "--out", str(root)],
        "grpc-at-the-rest-port": ["--server", server.rest.removeprefix("http://"), "--model",
                                  "notes", "--status", "--timeout", "20"],
        "rest-at-the-grpc-port": ["--rest", f"http://{server.grpc}", "--model", "notes",
                                  "--status", "--timeout", "20"],
    }
    # "grpc" runs as a subprocess (the real entry point), the others in this process meanwhile
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "serving.client", *cases.pop("grpc")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    results = {name: run_main(client_cli.main, args) for name, args in cases.items()}
    stdout, stderr = proc.communicate(timeout=240)
    results["grpc"] = (proc.returncode, stdout, stderr)
    results["root"], results["wav"], results["server"] = root, wav, server
    return results


@pytest.mark.parametrize("case, name", [("grpc", "notes"), ("rest", "roll"), ("bars", "bars")])
def test_cli_generate_writes_the_same_midi_as_the_client(cli, case, name, grpc_client,
                                                         primer_piece):
    rc, stdout, stderr = cli[case]
    assert rc == 0, stderr
    out = cli["root"] / f"{case}.mid"
    assert f"→ {out}" in stdout
    back = read_file(out)[0]
    assert len(back.pitch) > 0
    expected = Composer(grpc_client, model=name).generate(primer_piece, STEPS, seed=7).piece
    assert sorted(zip(back.pitch.tolist(), back.start.tolist())) == \
        sorted(zip(expected.pitch.tolist(), expected.start.tolist()))


def test_cli_writes_wav(cli):
    if not cli["wav"]:
        pytest.skip("fluidsynth or a General MIDI SoundFont is not installed")
    rc, stdout, stderr = cli["grpc"]
    assert rc == 0, stderr
    path = cli["root"] / "grpc.wav"
    assert f"and {path}" in stdout
    with wave.open(str(path)) as w:
        assert w.getnframes() > 0 and w.getsampwidth() == 2


@pytest.mark.parametrize("case, name, rep", [("info-grpc", "notes", "notes"),
                                             ("info-rest", "roll", "pianoroll")])
def test_cli_status_and_metadata_print_json(cli, case, name, rep):
    rc, stdout, stderr = cli[case]
    assert rc == 0, stderr
    info = json.loads(stdout)
    assert info["status"] == [{"version": 1, "state": "AVAILABLE"}]
    assert info["metadata"]["representation"] == rep
    assert info["metadata"]["model"] == SERVED[name][0]
    assert info["metadata"]["window"] == SEQ_LEN
    assert set(info["signatures"]["generate"]["inputs"]) == GENERATE_INPUTS[rep]


def test_cli_errors_exit_2_with_one_line(cli):
    rc, stdout, stderr = cli["down"]
    assert rc == 2 and "error:" in stderr and "not reachable" in stderr, stderr
    assert "Traceback" not in stderr
    rc, stdout, stderr = cli["unknown-model"]
    assert rc == 2 and "HTTP 404" in stderr and "no model 'nope'" in stderr, stderr
    rc, stdout, stderr = cli["no-out"]
    assert rc == 2 and "--out" in stderr, stderr
    rest, grpc_address = cli["server"].rest, cli["server"].grpc
    expected = {
        "out-is-a-folder": f"error: --out: {cli['root']} is a folder; give a file name, e.g. "
                           f"{cli['root'] / 'out.mid'}",
        "grpc-at-the-rest-port": f"error: {rest.removeprefix('http://')} answers, but not with "
                                 f"gRPC: is it the REST port? (for REST: --rest {rest})",
        "rest-at-the-grpc-port": f"error: http://{grpc_address} answers, but not with "
                                 f"HTTP/1.1: is it the gRPC port? (for gRPC: --server "
                                 f"{grpc_address})"}
    for case, line in expected.items():
        rc, stdout, stderr = cli[case]
        assert (rc, stderr.strip().splitlines()) == (2, [line]), (case, stderr)


# --- 2. status and metadata ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SERVED))
def test_status_lists_the_loaded_version_available(client, name):
    assert client.status(name) == [{"version": 1, "state": "AVAILABLE"}]
    assert client.status(name, version=1) == [{"version": 1, "state": "AVAILABLE"}]


def test_raw_get_model_status(status_stub):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "notes"
    response = status_stub.GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.mark.parametrize("name", list(SERVED))
def test_model_metadata_lists_signatures_and_inputs(client, name):
    rep = SERVED[name][1]
    signatures = client.signatures(name)
    assert {"generate", "serving_default", "metadata"} <= set(signatures)
    assert set(signatures["generate"]["inputs"]) == GENERATE_INPUTS[rep]
    assert signatures["generate"]["outputs"] == [OUTPUT[rep]]
    assert set(signatures["serving_default"]["inputs"]) == DEFAULT_INPUTS[rep]
    assert signatures["metadata"]["inputs"] == ["request"]
    assert set(signatures["metadata"]["outputs"]) == META_KEYS


def test_raw_get_model_metadata(stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "roll"
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "roll" and response.model_spec.version.value == 1
    defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(defs)
    primer = defs.signature_def["generate"].inputs["primer"]
    assert tf.dtypes.as_dtype(primer.dtype) == tf.float32
    assert [d.size for d in primer.tensor_shape.dim] == [-1, -1, 88]


@pytest.mark.parametrize("name", list(SERVED))
def test_metadata_signature_values(client, name, trained):
    family, rep = SERVED[name]
    meta = client.metadata(name)
    assert set(meta) == META_KEYS
    expected = {"model": family, "representation": rep, "steps_per_quarter": 4,
                "encoding": "active", "window": SEQ_LEN, "max_steps": export.DEFAULT_MAX_STEPS}
    assert {k: meta[k] for k in expected} == expected
    if rep == "notes":
        assert meta["vocab_size"] == len(trained[name].vocab.tokens) > 2
        assert (meta["max_duration"], meta["max_shift"], meta["chords"]) == (32, 32, "split")
    if rep == "pianoroll":
        assert meta["keys"] == 88


# --- 3. bad requests: the right code, a clear message, and the server keeps serving -------------

def _set(key, value):
    return lambda inputs: {**inputs, key: value}


def _drop(key):
    return lambda inputs: {k: v for k, v in inputs.items() if k != key}


def _bad_proto(inputs):
    proto = tf.make_tensor_proto(np.asarray([8], np.int32))
    proto.tensor_shape.dim[0].size = 3
    proto.tensor_content = b"\x01\x02"  # 2 bytes for 3 int32s
    return {**inputs, "num_steps": proto}


_same = dict  # leaves the inputs as they are

# id → (model, model_spec changes, inputs change, code, fragments of the message)
GRPC_BAD = {
    "unknown model": ("notes", dict(name="nope"), _same, "NOT_FOUND",
                      ["no model 'nope'", "notes"]),
    "unknown signature": ("notes", dict(signature="nope"), _same, "NOT_FOUND",
                          ["no signature 'nope'", "generate"]),
    "version not loaded": ("notes", dict(version=99), _same, "NOT_FOUND",
                           ["version 99 is not loaded", "loaded: 1"]),
    "unknown label": ("notes", dict(label="canary"), _same, "NOT_FOUND",
                      ["no version label 'canary'"]),
    "num_steps float32": ("notes", {}, _set("num_steps", np.asarray([8.0], np.float32)),
                          "INVALID_ARGUMENT", ["num_steps", "int32", "float32"]),
    "seed int32": ("notes", {}, _set("seed", np.asarray([1], np.int32)), "INVALID_ARGUMENT",
                   ["input seed", "int64"]),
    "num_steps rank 2": ("notes", {}, _set("num_steps", np.asarray([[8]], np.int32)),
                         "INVALID_ARGUMENT", ["input num_steps", "[1, 1]"]),
    "primer rank 1": ("notes", {}, _set("primer", np.asarray(["C4|4|2"], object)),
                      "INVALID_ARGUMENT", ["input primer"]),
    "primer as numbers": ("notes", {}, _set("primer", np.asarray([[60, 62]], np.int32)),
                          "INVALID_ARGUMENT", ["input primer", "string"]),
    "piano roll of 87 keys": ("roll", {}, _set("primer", np.zeros((1, 8, 87), np.float32)),
                              "INVALID_ARGUMENT", ["input primer", "88"]),
    "missing input": ("notes", {}, _drop("seed"), "INVALID_ARGUMENT", ["missing: seed"]),
    "extra input": ("notes", {}, _set("bogus", np.asarray([1], np.int32)), "INVALID_ARGUMENT",
                    ["unknown: bogus"]),
    "num_steps over the cap": ("notes", {}, _set("num_steps", np.asarray([MAX_STEPS + 1],
                                                                         np.int32)),
                               "INVALID_ARGUMENT", [f"num_steps must be <= {MAX_STEPS}"]),
    "num_bars over the cap": ("bars", {}, _set("num_bars", np.asarray([MAX_STEPS + 1], np.int32)),
                              "INVALID_ARGUMENT", [f"num_bars must be <= {MAX_STEPS}"]),
    "num_steps zero": ("roll", {}, _set("num_steps", np.asarray([0], np.int32)),
                       "INVALID_ARGUMENT", ["num_steps must be >= 1"]),
    "two num_steps for one row": ("notes", {}, _set("num_steps", np.asarray([4, 4], np.int32)),
                                  "INVALID_ARGUMENT", ["num_steps: one value per row"]),
    "temperature zero": ("notes", {}, _set("temperature", np.asarray([0.0], np.float32)),
                         "INVALID_ARGUMENT", ["temperature must be > 0 and <= 10"]),
    "temperature negative": ("roll", {}, _set("temperature", np.asarray([-1.0], np.float32)),
                             "INVALID_ARGUMENT", ["temperature must be > 0 and <= 10"]),
    "primer event without a shift": ("notes", {}, _set("primer", np.asarray([["C4|4"]], object)),
                                     "INVALID_ARGUMENT",
                                     ["primer: every event is TOKEN|DURATION|SHIFT"]),
    "primer row of padding only": ("notes", {}, _set("primer", np.asarray([[""]], object)),
                                   "INVALID_ARGUMENT", ["primer: every row needs an event"]),
    "tensor content of the wrong size": ("notes", {}, _bad_proto, "INVALID_ARGUMENT",
                                         ["input num_steps"]),
    "message over --max-request-bytes": (
        "notes", {}, _set("primer", np.asarray([["C4.E4.G4|4|2"] * 30000], object)),
        "RESOURCE_EXHAUSTED", ["larger than max"]),
}


@pytest.mark.parametrize("case", list(GRPC_BAD))
def test_grpc_bad_request(case, server, stub, good):
    name, spec, change, code, fragments = GRPC_BAD[case]
    spec = {"name": name, "signature": "generate", **spec}
    error = grpc_error(lambda: grpc_predict(stub, change(good(name, steps=4)), **spec))
    assert error.code() == getattr(grpc.StatusCode, code), error.details()
    for fragment in fragments:
        assert fragment in error.details()
    assert "Traceback" not in error.details()
    assert_serving(server, stub, good)


def test_grpc_bad_metadata_and_status_requests(server, stub, status_stub, good):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["nope"])
    request.model_spec.name = "notes"
    error = grpc_error(lambda: stub.GetModelMetadata(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "signature_def" in error.details()
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "nope"
    assert grpc_error(lambda: stub.GetModelMetadata(request, timeout=30)).code() == \
        grpc.StatusCode.NOT_FOUND
    for spec in (dict(name="nope"), dict(name="notes", version=5),
                 dict(name="notes", version_label="canary")):
        status = get_model_status_pb2.GetModelStatusRequest()
        status.model_spec.name = spec["name"]
        if "version" in spec:
            status.model_spec.version.value = spec["version"]
        if "version_label" in spec:  # version and version_label are one oneof
            status.model_spec.version_label = spec["version_label"]
        error = grpc_error(lambda: status_stub.GetModelStatus(status, timeout=30))
        assert error.code() == grpc.StatusCode.NOT_FOUND, spec
    assert_serving(server, stub, good)


def test_grpc_client_errors_carry_code_and_message(grpc_client, primer_piece):
    with pytest.raises(ClientError, match=r"^NOT_FOUND: no model 'nope'"):
        grpc_client.status("nope")
    with pytest.raises(ClientError,
                       match=r"^INVALID_ARGUMENT: temperature must be > 0 and <= 10"):
        Composer(grpc_client, model="notes").generate(primer_piece, 4, temperature=-1.0)


def test_grpc_tensor_of_an_unusable_dtype_is_invalid_argument(server, stub, good):
    """BUG: a TensorProto of dtype DT_VARIANT (or DT_RESOURCE) makes `tf.make_ndarray` raise
    KeyError, which serving/server.py Predict does not catch (only TypeError, ValueError):
    the client gets UNKNOWN "Exception calling application: 21"."""
    proto = tf.make_tensor_proto(np.asarray([8], np.int32))
    proto.dtype = tf.variant.as_datatype_enum
    error = grpc_error(lambda: grpc_predict(stub, {**good("notes", steps=4), "num_steps": proto}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "num_steps" in error.details()
    assert_serving(server, stub, good)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_malformed_primer_duration_names_the_primer(transport, server, stub, good):
    """BUG (NextStepExport._parse): "C4|x|2" should fail with the signature's own
    "primer: DURATION and SHIFT are whole numbers of grid steps", but `tf.strings.to_number`
    runs before that assertion (no control dependency), so the client gets TensorFlow's
    "StringToNumberOp could not correctly convert string: x", which does not name the input."""
    inputs = {**good("notes", steps=4), "primer": np.asarray([["C4|4|2", "C4|x|2"]], object)}
    if transport == "grpc":
        error = grpc_error(lambda: grpc_predict(stub, inputs))
        code, message = error.code(), error.details()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    else:
        code, body = rest_call(server, "POST", "/v1/models/notes:predict",
                          {"signature_name": "generate", "inputs": as_json(inputs)})
        assert code == 400, body
        message = body["error"]
    assert "primer" in message, message
    assert_serving(server, stub, good)


def _body(change=_same, signature="generate", name="notes"):
    """A :predict body from the good inputs of `name`, changed."""
    return lambda good: {"signature_name": signature,
                         "inputs": change(as_json(good(name, steps=4)))}


# id → (method, path, body (bytes, dict, or a function of `good`), status, fragments)
REST_BAD = {
    "unknown model": ("GET", "/v1/models/nope", None, 404, ["no model 'nope'"]),
    "unknown model metadata": ("GET", "/v1/models/nope/metadata", None, 404, ["no model"]),
    "unknown path": ("GET", "/v2/models/notes", None, 404, ["no such path"]),
    "unknown sub-path": ("GET", "/v1/models/notes/bogus", None, 404, ["no such path"]),
    "version not loaded": ("GET", "/v1/models/notes/versions/99", None, 404,
                           ["version 99 is not loaded"]),
    "version word": ("GET", "/v1/models/notes/versions/latest", None, 404, ["no such path"]),
    "unknown label": ("GET", "/v1/models/notes/labels/canary", None, 404,
                      ["no version label 'canary'"]),
    "predict unknown model": ("POST", "/v1/models/nope:predict", _body(), 404, ["no model"]),
    "predict unknown version": ("POST", "/v1/models/notes/versions/7:predict", _body(), 404,
                                ["version 7 is not loaded"]),
    "predict unknown label": ("POST", "/v1/models/notes/labels/canary:predict", _body(), 404,
                              ["no version label 'canary'"]),
    "predict unknown signature": ("POST", "/v1/models/notes:predict",
                                  _body(signature="nope"), 404, ["no signature 'nope'"]),
    "POST without :predict": ("POST", "/v1/models/notes", _body(), 404, [":predict"]),
    "body not JSON": ("POST", "/v1/models/notes:predict", b"{not json", 400,
                      ["body is not JSON"]),
    "no inputs": ("POST", "/v1/models/notes:predict", {"signature_name": "generate"}, 400,
                  ['"inputs"']),
    "float for an int input": ("POST", "/v1/models/notes:predict",
                               _body(lambda i: {**i, "num_steps": [8.5]}), 400,
                               ["input num_steps", "whole numbers"]),
    "string for an int input": ("POST", "/v1/models/notes:predict",
                                _body(lambda i: {**i, "seed": ["seven"]}), 400, ["input seed"]),
    "num_steps rank 2": ("POST", "/v1/models/notes:predict",
                         _body(lambda i: {**i, "num_steps": [[4]]}), 400, ["input num_steps"]),
    "ragged primer": ("POST", "/v1/models/roll:predict",
                      _body(lambda i: {**i, "primer": [[[0.0] * 88, [0.0] * 3]]}, name="roll"),
                      400, ["input primer"]),
    "missing input": ("POST", "/v1/models/notes:predict",
                      _body(lambda i: {k: v for k, v in i.items() if k != "top_k"}), 400,
                      ["missing: top_k"]),
    "extra input": ("POST", "/v1/models/notes:predict",
                    _body(lambda i: {**i, "bogus": [1]}), 400, ["unknown: bogus"]),
    "num_steps over the cap": ("POST", "/v1/models/notes:predict",
                               _body(lambda i: {**i, "num_steps": [MAX_STEPS + 1]}), 400,
                               [f"num_steps must be <= {MAX_STEPS}"]),
    "temperature zero": ("POST", "/v1/models/roll:predict",
                         _body(lambda i: {**i, "temperature": [0.0]}, name="roll"), 400,
                         ["temperature must be > 0 and <= 10"]),
    "malformed primer event": ("POST", "/v1/models/notes:predict",
                               _body(lambda i: {**i, "primer": [["C4|4", "E4|2|2"]]}), 400,
                               ["primer: every event is TOKEN|DURATION|SHIFT"]),
    "body over --max-request-bytes": ("POST", "/v1/models/notes:predict",
                                      b" " * (MAX_BYTES + 1), 413, [str(MAX_BYTES)]),
}


@pytest.mark.parametrize("case", list(REST_BAD))
def test_rest_bad_request(case, server, stub, good):
    method, path, body, code, fragments = REST_BAD[case]
    status, answer = rest_call(server, method, path, body(good) if callable(body) else body)
    assert status == code, answer
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    for fragment in fragments:
        assert fragment in answer["error"]
    assert_serving(server, stub, good)


@pytest.mark.parametrize("body", [[1, 2], "generate", 7, None],
                         ids=["list", "string", "number", "null"])
def test_rest_json_body_that_is_not_an_object_is_400(body, server, stub, good):
    """BUG (serving/server.py do_POST): `request.get(...)` on a JSON body that is not an object
    raises AttributeError, which nothing catches: the server closes the connection without an
    answer instead of 400 {"error": ...}."""
    status, answer = rest_call(server, "POST", "/v1/models/notes:predict",
                               json.dumps(body).encode())
    assert status == 400, answer
    assert "error" in answer
    assert_serving(server, stub, good)


@pytest.mark.parametrize("primer", [[[60, 62]], [[None, "C4|4|2"]]], ids=["numbers", "null"])
def test_rest_non_string_values_for_a_string_input_are_400(primer, server, stub, good):
    """BUG (serving/server.py _json_inputs, models.py Servable.predict): a string input is cast
    to `object`, so numbers or nulls pass the dtype check and `tf.constant(..., tf.string)`
    raises TypeError/ValueError, uncaught: the connection closes without an answer."""
    body = _body(lambda i: {**i, "primer": primer})(good)
    status, answer = rest_call(server, "POST", "/v1/models/notes:predict", body)
    assert status == 400, answer
    assert "primer" in answer["error"]
    assert_serving(server, stub, good)


def test_rest_status_of_version_0_is_not_found_like_grpc(server, status_stub):
    """BUG (serving/server.py do_GET): `if version or label` treats /versions/0 as no version,
    so REST answers 200 with every loaded version, while gRPC GetModelStatus (version 0) and
    every other REST route answer NOT_FOUND for a version that is not loaded."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "notes"
    request.model_spec.version.value = 0
    assert grpc_error(lambda: status_stub.GetModelStatus(request, timeout=30)).code() == \
        grpc.StatusCode.NOT_FOUND
    assert rest_call(server, "GET", "/v1/models/notes/versions/0/metadata")[0] == 404
    status, answer = rest_call(server, "GET", "/v1/models/notes/versions/0")
    assert status == 404, answer


def test_rest_client_errors_carry_status_and_message(rest_client):
    with pytest.raises(ClientError, match=r"^HTTP 404: no model 'nope'"):
        rest_client.status("nope")
    with pytest.raises(ClientError, match=r"^HTTP 400: num_bars must be <= 64"):
        rest_client.predict("bars", "generate", {"chords": np.zeros((1, 2, 13), np.float32),
                                                 "num_bars": np.asarray([99], np.int32),
                                                 "seed": np.asarray([1], np.int64)})


def test_client_server_down_is_not_reachable_quickly():
    port = closed_port()
    for client in (Client(f"127.0.0.1:{port}", timeout=20),
                   Client(rest=f"http://127.0.0.1:{port}", timeout=20)):
        start = time.monotonic()
        with pytest.raises(ClientError, match="not reachable"):
            client.status("notes")
        assert time.monotonic() - start < 5


def test_client_timeout():
    with silent_listener() as port:
        start = time.monotonic()
        with pytest.raises(ClientError, match=r"no answer from .* in 1 s"):
            Client(f"127.0.0.1:{port}", timeout=1).status("notes")
        with pytest.raises(ClientError, match="timed out"):
            Client(rest=f"http://127.0.0.1:{port}", timeout=1).status("notes")
        assert time.monotonic() - start < 10


def test_client_timeout_on_a_slow_request_leaves_the_server_serving(server, stub, good):
    client = Client(server.grpc, timeout=0.001)
    with pytest.raises(ClientError, match=r"no answer from .* in 0.001 s"):
        client.predict("notes", "generate", good("notes", steps=MAX_STEPS))
    assert_serving(server, stub, good)


# --- labels and 4. a new version while serving ---------------------------------------------------

def test_version_label_from_the_config(trained, server, grpc_client, rest_client, stub):
    """A version_labels entry added to models.config is picked up at the next poll."""
    path = trained.export_dir / "models.config"
    original = path.read_text()
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(original, config)
    [entry] = [c for c in config.model_config_list.config if c.name == "notes"]
    entry.version_labels["stable"] = 1
    write_config_atomically(path, config)
    try:
        wait_for(lambda: grpc_client.status("notes", label="stable"), what="label stable")
        assert rest_client.status("notes", label="stable") == \
            [{"version": 1, "state": "AVAILABLE"}]
        assert grpc_client.metadata("notes", label="stable")["representation"] == "notes"
        response = grpc_predict(stub, {"request": np.zeros([1], np.int32)}, name="notes",
                                signature="metadata", label="stable")
        assert response.model_spec.version.value == 1
    finally:
        tmp = path.with_suffix(".writing")
        tmp.write_text(original)
        os.replace(tmp, path)


def test_new_version_is_loaded_and_the_old_one_unloaded(trained, server, stub, grpc_client,
                                                       rest_client, good):
    name = VERSIONED
    assert grpc_client.status(name) == [{"version": 1, "state": "AVAILABLE"}]
    before = grpc_predict(stub, good("roll", steps=4), name=name)
    assert before.model_spec.version.value == 1
    t = trained[name]
    path = export.export(t.model, t.name, t.spec, SEQ_LEN, trained.export_dir, name=name)
    assert path == trained.export_dir / name / "2"
    wait_for(lambda: grpc_client.status(name) == [{"version": 2, "state": "AVAILABLE"}],
             what="version 2 alone AVAILABLE")
    assert rest_client.status(name) == [{"version": 2, "state": "AVAILABLE"}]
    # requests without a version go to the new one
    after = grpc_predict(stub, good("roll", steps=4), name=name)
    assert (after.model_spec.name, after.model_spec.version.value) == (name, 2)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = name
    assert stub.GetModelMetadata(request, timeout=30).model_spec.version.value == 2
    assert grpc_client.metadata(name)["representation"] == "pianoroll"
    # the old one is unloaded (latest 1 by default)
    error = grpc_error(lambda: grpc_predict(stub, good("roll", steps=4), name=name, version=1))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "version 1 is not loaded" in error.details() and "loaded: 2" in error.details()
    status, answer = rest_call(server, "GET", f"/v1/models/{name}/versions/1")
    assert status == 404, answer
    status, answer = rest_call(server, "POST", f"/v1/models/{name}/versions/2:predict",
                          {"signature_name": "generate", "inputs": as_json(good("roll", steps=4))})
    assert status == 200, answer
    # the same weights: the new version composes what the old one did
    np.testing.assert_array_equal(tf.make_ndarray(after.outputs["frames"]),
                                  tf.make_ndarray(before.outputs["frames"]))
    # the other models are untouched
    assert grpc_client.status("roll") == [{"version": 1, "state": "AVAILABLE"}]


# --- 5. SIGTERM ----------------------------------------------------------------------------------

def test_sigterm_stops_the_server_with_exit_code_0(trained, workdir, primer_piece):
    s = start_server(trained.export_dir / "models.config", workdir / "sigterm-logs",
                     *SERVER_FLAGS)
    try:
        assert Client(s.grpc, timeout=30).status("notes")[0]["state"] == "AVAILABLE"
        start = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(timeout=20)
        elapsed = time.monotonic() - start
    finally:
        stop_server(s.proc)
    assert rc == 0, s.log()
    assert elapsed < 8, elapsed
    assert "stopping" in s.log()
    with pytest.raises(ClientError, match="not reachable"):
        Client(s.grpc, timeout=5).status("notes")
    with pytest.raises(ClientError, match="not reachable"):
        Client(rest=s.rest, timeout=5).status("notes")


# --- 6. the Dockerfile's TF Serving configs ------------------------------------------------------

def _messages(file_proto):
    from google.protobuf import (  # noqa: F401  (wrappers_pb2 registers wrappers.proto)
        descriptor_pool,
        message_factory,
        wrappers_pb2,
    )

    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(file_proto.name)
    except KeyError:
        pool.Add(file_proto)
    return {m.name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{file_proto.package}.{m.name}"))
        for m in file_proto.message_type}


def _file(name, package, dependencies, messages):
    """A FileDescriptorProto; messages: {name: [(field, number, type, label, type_name)]}."""
    from google.protobuf import descriptor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3",
                                               dependency=dependencies)
    for message, fields in messages.items():
        m = proto.message_type.add(name=message)
        for field, number, kind, label, type_name in fields:
            f = m.field.add(name=field, number=number, type=getattr(F, kind),
                            label=getattr(F, label))
            if type_name:
                f.type_name = type_name
    return proto


@pytest.fixture(scope="module")
def serving_protos():
    """TF Serving's MonitoringConfig and BatchingParameters, built from their schema
    (tensorflow-serving-api ships neither)."""
    monitoring = _file("test_serving/monitoring_config.proto", "tensorflow.serving", [], {
        "PrometheusConfig": [("enable", 1, "TYPE_BOOL", "LABEL_OPTIONAL", ""),
                             ("path", 2, "TYPE_STRING", "LABEL_OPTIONAL", "")],
        "MonitoringConfig": [("prometheus_config", 1, "TYPE_MESSAGE", "LABEL_OPTIONAL",
                              ".tensorflow.serving.PrometheusConfig")]})
    i64, s = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    batching = _file("test_serving/session_bundle_config.proto", "tensorflow.serving",
                     ["google/protobuf/wrappers.proto"], {"BatchingParameters": [
                         ("max_batch_size", 1, "TYPE_MESSAGE", "LABEL_OPTIONAL", i64),
                         ("batch_timeout_micros", 2, "TYPE_MESSAGE", "LABEL_OPTIONAL", i64),
                         ("max_enqueued_batches", 3, "TYPE_MESSAGE", "LABEL_OPTIONAL", i64),
                         ("num_batch_threads", 4, "TYPE_MESSAGE", "LABEL_OPTIONAL", i64),
                         ("thread_pool_name", 5, "TYPE_MESSAGE", "LABEL_OPTIONAL", s),
                         ("allowed_batch_sizes", 6, "TYPE_INT64", "LABEL_REPEATED", ""),
                         ("pad_variable_length_inputs", 7, "TYPE_BOOL", "LABEL_OPTIONAL", "")]})
    return {**_messages(monitoring), **_messages(batching)}


def test_monitoring_config_parses_as_tf_serving_monitoring_config(serving_protos):
    config = serving_protos["MonitoringConfig"]()
    text_format.Parse((REPO / "serving/config/monitoring.config").read_text(), config)
    assert config.HasField("prometheus_config")
    assert config.prometheus_config.enable is True
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_batching_config_parses_as_tf_serving_batching_parameters(serving_protos):
    params = serving_protos["BatchingParameters"]()
    text_format.Parse((REPO / "serving/config/batching.config").read_text(), params)
    sizes = list(params.allowed_batch_sizes)
    assert params.HasField("max_batch_size") and params.max_batch_size.value > 0
    assert sizes and sizes == sorted(set(sizes)) and sizes[0] > 0  # strictly increasing
    assert sizes[-1] == params.max_batch_size.value  # TF Serving refuses anything else
    assert params.batch_timeout_micros.value >= 0
    assert params.num_batch_threads.value > 0 and params.max_enqueued_batches.value > 0


def test_schema_built_protos_reject_unknown_fields(serving_protos):
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size { value: 1 } max_batch_sise { value: 2 }",
                          serving_protos["BatchingParameters"]())
    with pytest.raises(text_format.ParseError):
        text_format.Parse("prometheus_config { enabled: true }",
                          serving_protos["MonitoringConfig"]())


def test_exported_models_config_parses_as_model_server_config(trained):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((trained.export_dir / "models.config").read_text(), config)
    entries = {c.name: c for c in config.model_config_list.config}
    assert set(entries) == {*SERVED, VERSIONED}
    for name, entry in entries.items():
        assert entry.base_path == f"/models/{name}"  # where the Dockerfile copies saved_models/
        assert entry.model_platform == "tensorflow"
        assert (trained.export_dir / name / "1" / "saved_model.pb").exists()


def _dockerfile():
    lines, joined = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        joined += line.rstrip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        if joined.strip():
            lines.append(joined.strip())
        joined = ""
    return lines


def test_dockerfile_base_image_ports_and_configs():
    lines = _dockerfile()
    [base] = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    image, _, tag = base.partition(":")
    assert image == "tensorflow/serving"
    match = re.match(r"(\d+)\.(\d+)", tag)
    assert match, f"FROM {base}: pin a version"
    installed = tuple(int(x) for x in tf.__version__.split(".")[:2])
    assert (int(match[1]), int(match[2])) >= installed, (base, tf.__version__)

    exposed = {p for line in lines if line.upper().startswith("EXPOSE ")
               for p in line.split()[1:]}
    assert exposed == {"8500", "8501"}
    [entry] = [line for line in lines if line.upper().startswith("ENTRYPOINT ")]
    args = json.loads(entry.split(None, 1)[1])
    assert args[0] == "tensorflow_model_server"
    flags = dict(a[2:].split("=", 1) for a in args[1:] if "=" in a)
    assert (flags["port"], flags["rest_api_port"]) == ("8500", "8501")

    copies = {}
    for line in lines:
        if line.upper().startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                copies[dest.rstrip("/")] = REPO / source
    # each config file the server is pointed at is one the image copies in
    for flag in ("batching_parameters_file", "monitoring_config_file"):
        container = Path(flags[flag])
        local = copies[str(container.parent)] / container.name
        assert local.is_file(), f"--{flag}={container}: {local} missing"
    model_config = Path(flags["model_config_file"])
    assert copies[str(model_config.parent)] == REPO / "saved_models"  # written by export
    assert model_config.name == "models.config"
    assert "--enable_batching" in args
