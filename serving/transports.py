"""Where a Composer's requests run: a SavedModel loaded in this process, or a served model
reached over gRPC or REST (TF Serving or `serving.server`)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

import numpy as np

from preprocessing.piece import InputError
from serving import contract
from serving.errors import ComposerError, error_message
from serving.versions import version_numbers


class Transport(Protocol):
    """What a Composer needs of the place its model runs."""

    name: str  # the SavedModel folder, or the model's name and server, for messages and plots

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on a batch; a failure is a ComposerError with a one-line reason."""

    def metadata(self) -> dict:
        """The model's `metadata` signature as plain values."""

    def signatures(self) -> dict[str, dict[str, list[str]]]:
        """Each signature's input and output names."""

    def sibling(self, name: str) -> Transport:
        """Another model where this one is: a SavedModel folder, or a name on the same server."""


def resolve(model: str | Path, version: int | None = None) -> Path:
    """A model folder (newest version, or `version`) or a version folder → the version folder.

    Raises:
        InputError: no such version, or no exported SavedModel in the folder.
    """
    path = Path(model)
    if (path / "saved_model.pb").exists():
        return path
    found = version_numbers(path, saved_models_only=True)[::-1]
    if version is not None:
        if version not in found:
            raise InputError(f"{path}: no version {version} (have: {found or 'none'})")
        return path / str(version)
    if not found:
        raise InputError(f"{path}: no exported SavedModel (expected {path}/<version>/)")
    return path / str(found[0])


class LocalModel:
    """A SavedModel loaded in this process with `tf.saved_model.load` (or one loaded already)."""

    def __init__(self, model, version: int | None = None):
        import tensorflow as tf

        if hasattr(model, "signatures"):
            self.loaded, self.name = model, type(model).__name__
        else:
            folder = resolve(model, version)
            self.loaded, self.name = tf.saved_model.load(str(folder)), str(folder)
        self._metadata = None

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        if signature not in self.loaded.signatures:
            raise ComposerError(f"{self.name}: no signature {signature!r} (it has "
                                f"{', '.join(sorted(self.loaded.signatures))})")
        try:
            outputs = self.loaded.signatures[signature](
                **{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as exc:
            raise ComposerError(error_message(exc.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}

    def metadata(self) -> dict:
        if self._metadata is None:  # a loaded model never changes
            self._metadata = contract.metadata_from_outputs(
                self.call("metadata", contract.METADATA_REQUEST))
        return dict(self._metadata)

    def signatures(self) -> dict[str, dict[str, list[str]]]:
        return {name: {"inputs": sorted(fn.structured_input_signature[1]),
                       "outputs": sorted(fn.structured_outputs)}
                for name, fn in self.loaded.signatures.items()}

    def sibling(self, name: str) -> LocalModel:
        return LocalModel(name)


class _Server:
    """What the gRPC and REST clients share: `metadata` through their `predict`."""

    rest: str | None = None  # the URL of a REST server
    address: str  # where the server is, for messages

    def predict(self, model: str, signature: str, inputs: dict[str, np.ndarray],
                version: int | None = None, label: str = "") -> dict[str, np.ndarray]:
        raise NotImplementedError

    def metadata(self, model: str, version: int | None = None, label: str = "") -> dict:
        """The model's `metadata` signature: representation, grid, window, ..."""
        return contract.metadata_from_outputs(
            self.predict(model, "metadata", contract.METADATA_REQUEST, version, label))


class GrpcClient(_Server):
    """TF Serving's gRPC API at host:port: Predict, GetModelMetadata, GetModelStatus."""

    def __init__(self, server: str = "127.0.0.1:8500", timeout: float = 60.0):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.server = self.address = server
        self.timeout, self._grpc = timeout, grpc
        self.channel = grpc.insecure_channel(server, options=[
            ("grpc.max_receive_message_length", 64 * 2**20)])
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            if code == self._grpc.StatusCode.UNAVAILABLE:
                details = exc.details() or ""
                if "Failed parsing HTTP/2" in details:  # an HTTP/1 server
                    raise ComposerError(
                        f"{self.server} answers, but not with gRPC: is it the REST port? "
                        f"(for REST: --rest http://{self.server})") from None
                if "queue" in details or "stopping" in details:  # it answered: busy, stopping
                    raise ComposerError(f"UNAVAILABLE: {details}") from None
                raise ComposerError(f"server {self.server} is not reachable") from None
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ComposerError(f"no answer from {self.server} in {self.timeout:g} s") \
                    from None
            raise ComposerError(f"{code.name}: {exc.details()}") from None

    @staticmethod
    def _spec(spec, model: str, version: int | None, label: str):
        spec.name = model
        if version is not None:
            spec.version.value = version
        elif label:
            spec.version_label = label

    def predict(self, model: str, signature: str, inputs: dict[str, np.ndarray],
                version: int | None = None, label: str = "") -> dict[str, np.ndarray]:
        """Runs a signature; outputs as numpy arrays."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.predictions.Predict, request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def signatures(self, model: str, version: int | None = None, label: str = "") -> dict:
        """GetModelMetadata: each signature's input and output names."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.predictions.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        return {k: {"inputs": sorted(v.inputs), "outputs": sorted(v.outputs)}
                for k, v in defs.signature_def.items()}

    def status(self, model: str, version: int | None = None, label: str = "") -> list[dict]:
        """GetModelStatus: [{"version": N, "state": "AVAILABLE"}, ...]."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": s.version, "state": states.Name(s.state)}
                for s in response.model_version_status]


class RestClient(_Server):
    """TF Serving's REST API at a URL: /v1/models/NAME[/versions/N|/labels/L][/metadata]."""

    def __init__(self, rest: str = "http://127.0.0.1:8501", timeout: float = 60.0):
        self.rest = self.address = rest.rstrip("/")
        self.timeout = timeout

    def _http(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.rest + path, data=data, method="POST" if data
                                         else "GET", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise ComposerError(f"HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ComposerError(f"server {self.rest} is not reachable ({exc})") from None
        except http.client.HTTPException:  # it answered, but not in HTTP/1: gRPC speaks HTTP/2
            address = self.rest.split("://", 1)[-1]
            raise ComposerError(f"{self.rest} answers, but not with HTTP/1.1: is it the gRPC "
                                f"port? (for gRPC: --server {address})") from None

    @staticmethod
    def _path(model: str, version: int | None, label: str) -> str:
        suffix = f"/versions/{version}" if version is not None else \
            f"/labels/{label}" if label else ""
        return f"/v1/models/{model}{suffix}"

    def predict(self, model: str, signature: str, inputs: dict[str, np.ndarray],
                version: int | None = None, label: str = "") -> dict[str, np.ndarray]:
        """Runs a signature; outputs as numpy arrays."""
        body = {"signature_name": signature, "inputs": {k: _listed(v) for k, v in inputs.items()}}
        outputs = self._http(self._path(model, version, label) + ":predict", body)["outputs"]
        return {k: np.asarray(v) for k, v in outputs.items()}

    def signatures(self, model: str, version: int | None = None, label: str = "") -> dict:
        """GET .../metadata: each signature's input and output names."""
        meta = self._http(self._path(model, version, label) + "/metadata")
        defs = meta["metadata"]["signature_def"]["signature_def"]
        return {k: {"inputs": sorted(v.get("inputs", {})), "outputs": sorted(v.get("outputs", {}))}
                for k, v in defs.items()}

    def status(self, model: str, version: int | None = None, label: str = "") -> list[dict]:
        """GET /v1/models/NAME: [{"version": N, "state": "AVAILABLE"}, ...]."""
        statuses = self._http(self._path(model, version, label))["model_version_status"]
        return [{"version": int(s["version"]), "state": s["state"]} for s in statuses]


def _listed(value: np.ndarray):
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s),
                            otypes=[object])(value).tolist()
    return value.tolist()


class ServedModel:
    """One model (newest version, or a version or label) on a gRPC or REST server."""

    def __init__(self, client: _Server, model: str, version: int | None = None,
                 label: str = ""):
        self.client, self.model, self.version, self.label = client, model, version, label
        self.name = f"{model} at {client.address}"

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.client.predict(self.model, signature, inputs, self.version, self.label)

    def metadata(self) -> dict:  # asked each time: a newer version may be serving by now
        return self.client.metadata(self.model, self.version, self.label)

    def signatures(self) -> dict[str, dict[str, list[str]]]:
        return self.client.signatures(self.model, self.version, self.label)

    def status(self) -> list[dict]:
        """The served versions and their states."""
        return self.client.status(self.model, self.version, self.label)

    def sibling(self, name: str) -> ServedModel:
        return ServedModel(self.client, name)


def open_transport(target, model: str | None = None, version: int | None = None,
                   label: str = "", timeout: float = 60.0) -> Transport:
    """The transport a Composer's target names (see `Composer`).

    Raises:
        InputError: a server without a model name, a label for a local model, or a folder with
            no exported SavedModel.
    """
    if hasattr(target, "call") and hasattr(target, "metadata"):
        return target
    if isinstance(target, str) and target.startswith(("grpc://", "http://", "https://")):
        target = GrpcClient(target.removeprefix("grpc://"), timeout) \
            if target.startswith("grpc://") else RestClient(target, timeout)
    if isinstance(target, _Server):
        if not model:
            raise InputError(f"model: which model of {target.address} "
                             "(Composer(URL, model=NAME))")
        return ServedModel(target, model, version, label)
    if label:
        raise InputError("label: only served models have labels; pass version=N")
    if hasattr(target, "signatures"):  # a SavedModel loaded already
        return LocalModel(target)
    return LocalModel(Path(target) / model if model else target, version)
