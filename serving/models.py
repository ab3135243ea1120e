"""The servable models of a TF Serving model config: loaded SavedModels, their versions, and the
one place requests are checked and run (shared by the gRPC and REST front ends)."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import numpy as np

from serving.errors import error_message
from serving.versions import training_info, version_numbers

log = logging.getLogger("serving")
MAX_RETRY_SECONDS = 60.0  # the longest wait before loading a failed version again
STEP_INPUTS = ("num_steps", "num_bars")  # inputs that say how many steps to generate
# per-row counts that set an output's length otherwise (vae `interpolate`: num_points segments):
# requests merge into one batch only when these agree
SHAPING_INPUTS = ("num_points",)


class ServingError(Exception):
    """A request the server refuses: `code` is "NOT_FOUND", "INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED" (the model ran out of memory), "UNAVAILABLE" (a full batch queue or a
    stopping server: try again) or "DEADLINE_EXCEEDED"; `message` is one line (of at most 400
    characters)."""

    def __init__(self, code: str, message: str):
        message = " ".join(message.split())  # names from the request may hold newlines
        message = message if len(message) <= 400 else message[:397] + "..."
        super().__init__(message)
        self.code, self.message = code, message


@dataclasses.dataclass(frozen=True)
class Limits:
    """The server's caps on one request (its flags of the same names)."""

    max_steps: int = 2000
    max_batch: int = 64
    max_batch_steps: int = 32768
    max_request_bytes: int = 4 * 2**20


class Servable:
    """One loaded version of one model."""

    def __init__(self, name: str, version: int, path: Path):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.name, self.version, self.path = name, version, path
        self.module = tf.saved_model.load(str(path))
        self.signatures = dict(self.module.signatures)
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = dict(saved.meta_graphs[0].signature_def)
        self.info = training_info(path)  # what it was trained on: {} when not known
        self._time_outputs: dict[str, frozenset[str]] = {}
        self._metadata: dict | None = None

    def metadata(self) -> dict:
        """Its `metadata` signature's outputs as plain values, read once ({} for a model
        without one, or whose metadata fails)."""
        if self._metadata is None:
            from serving.contract import METADATA_REQUEST, metadata_from_outputs

            fn = self.signatures.get("metadata")
            try:
                self._metadata = metadata_from_outputs(fn(**METADATA_REQUEST)) if fn else {}
            except Exception as exc:
                log.warning("%s version %s: its metadata signature fails (%s)", self.name,
                            self.version, exc)
                self._metadata = {}
        return self._metadata

    def check(self, signature: str, inputs: dict[str, np.ndarray], limits: Limits):
        """Checks `inputs` against the signature and the server's `limits` before anything runs:
        (the signature's function, its inputs as tensors of the signature's dtypes).

        Raises:
            ServingError: NOT_FOUND for an unknown signature; INVALID_ARGUMENT, naming the input
                and the cap, for inputs that do not fit the signature or the limits.
        """
        import tensorflow as tf

        fn = self.signatures.get(signature or "serving_default")
        if fn is None:
            raise ServingError("NOT_FOUND", f"model {self.name} version {self.version} has no "
                               f"signature {signature[:100]!r}; it has "
                               f"{', '.join(self.signatures)}")
        expected = fn.structured_input_signature[1]
        missing, unknown = set(expected) - set(inputs), set(inputs) - set(expected)
        if missing or unknown:
            raise ServingError("INVALID_ARGUMENT", f"signature {signature[:100]!r} takes inputs "
                               f"{', '.join(sorted(expected)) or '(none)'}; missing: "
                               f"{', '.join(sorted(missing)) or '-'}; unknown: "
                               f"{', '.join(sorted(unknown)) or '-'}")
        for key, spec in expected.items():
            value = inputs[key]
            ok = value.dtype.kind in "OSU" if spec.dtype == tf.string \
                else value.dtype == spec.dtype.as_numpy_dtype
            if not ok or not spec.shape.is_compatible_with(value.shape):
                raise ServingError("INVALID_ARGUMENT", f"input {key}: expected "
                                   f"{spec.dtype.name} {spec.shape}, got {value.dtype} "
                                   f"{list(value.shape)}")
        _check_limits(inputs, limits)
        tensors = {}
        for key, spec in expected.items():
            try:
                tensors[key] = tf.constant(inputs[key], spec.dtype)
            except (TypeError, ValueError) as exc:
                raise ServingError("INVALID_ARGUMENT", f"input {key}: {exc}") from None
        return fn, tensors

    def run(self, fn, tensors: dict) -> dict:
        """Calls a signature's function on checked inputs (one request's, or several merged).

        Returns:
            Output name → numpy array.

        Raises:
            ServingError: INVALID_ARGUMENT (a failed assertion of the model, in its words) or
                RESOURCE_EXHAUSTED.
        """
        import tensorflow as tf

        try:
            outputs = fn(**tensors)
        except tf.errors.InvalidArgumentError as exc:
            raise ServingError("INVALID_ARGUMENT", error_message(exc.message)) from None
        except tf.errors.ResourceExhaustedError as exc:
            raise ServingError("RESOURCE_EXHAUSTED", error_message(exc.message)) from None
        return {k: np.asarray(v.numpy()) for k, v in outputs.items()}

    def time_outputs(self, signature: str) -> frozenset[str]:
        """Outputs of a signature whose second axis has no fixed size: where a generating
        signature writes its steps ([B, T, ...]), padded past each row's own num_steps."""
        if signature not in self._time_outputs:
            specs = self.signatures[signature].structured_outputs
            self._time_outputs[signature] = frozenset(
                k for k, spec in specs.items()
                if spec.shape.rank is not None and spec.shape.rank >= 2 and spec.shape[1] is None)
        return self._time_outputs[signature]


def _check_limits(inputs: dict[str, np.ndarray], limits: Limits) -> None:
    """Rows (the first axis) per request, steps (num_steps or num_bars, else the inputs'
    second axis: the sequence) per row, and rows x steps: the work a request asks for."""
    for key in STEP_INPUTS:
        if key in inputs and inputs[key].size and np.max(inputs[key]) > limits.max_steps:
            raise ServingError("INVALID_ARGUMENT",
                               f"{key} must be <= {limits.max_steps} (this server's cap)")
    shaped = {k: v.shape for k, v in inputs.items() if v.ndim}
    if not shaped:
        return
    key = max(shaped, key=lambda k: shaped[k][0])
    rows = shaped[key][0]
    if rows > limits.max_batch:
        raise ServingError("INVALID_ARGUMENT", f"input {key}: {rows} rows; this server takes "
                           f"at most {limits.max_batch} per request (--max-batch)")
    # a row costs the steps it reads (its longest sequence input) and the steps it generates
    read = max((s[1] for s in shaped.values() if len(s) > 1), default=0)
    written = max((int(np.max(inputs[k])) for k in STEP_INPUTS if k in inputs and inputs[k].size),
                  default=0)
    if rows * (read + written) > limits.max_batch_steps:
        raise ServingError("INVALID_ARGUMENT", f"{rows} rows x ({read} steps read + {written} "
                           f"generated) = {rows * (read + written)}; this server takes at most "
                           f"{limits.max_batch_steps} per request (--max-batch-steps)")


class ModelRegistry:
    """Models named in a model config; serves each one's newest version (or the versions its
    `model_version_policy` names) and loads new versions as they appear."""

    def __init__(self, config_path: str | Path, poll_seconds: float = 2.0):
        self.config_path = Path(config_path)
        self.poll_seconds = poll_seconds
        self.lock = threading.Lock()
        self.models: dict[str, dict[int, Servable]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.failed: dict[Path, _Failure] = {}  # version folders that failed to load
        self.entries = self._read_config()
        self.refresh()

    def _read_config(self):
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        try:
            text_format.Parse(self.config_path.read_text(), config)
        except (OSError, text_format.ParseError) as exc:
            raise ValueError(f"{self.config_path}: not a model config ({exc})") from None
        entries = list(config.model_config_list.config)
        if not entries:
            raise ValueError(f"{self.config_path}: lists no model")
        return entries

    def base_path(self, entry) -> Path:
        """The entry's base_path; /models/NAME (the container's layout) falls back to the folder
        beside the config file."""
        path = Path(entry.base_path)
        beside = self.config_path.parent / path.name
        return path if path.exists() or not beside.exists() else beside

    def _wanted(self, entry, available: list[int]) -> list[int]:
        policy = entry.model_version_policy
        if policy.HasField("all"):
            return available
        if policy.HasField("specific"):
            return [v for v in available if v in set(policy.specific.versions)]
        return available[-max(1, policy.latest.num_versions or 1):]

    def refresh(self) -> None:
        """Rereads the config; loads versions that appeared, unloads those no longer wanted.

        A version that fails to load (say, one still being copied) is tried again as soon as a
        file in its folder changes, else after a back-off that doubles from the poll interval up
        to a minute; its failure is logged once per change. The versions that work keep serving
        until a wanted one loads.
        """
        try:
            self.entries = self._read_config()
        except ValueError as exc:  # a config being rewritten: keep serving the old one
            log.warning("%s", exc)
        for entry in self.entries:
            try:
                self._refresh_entry(entry)
            except OSError as exc:  # a folder removed while listed: look again next poll
                log.warning("model %s: %s", entry.name, exc)
        names = {entry.name for entry in self.entries}
        with self.lock:
            for name in set(self.models) - names:
                del self.models[name]
                self.labels.pop(name, None)

    def _refresh_entry(self, entry) -> None:
        base = self.base_path(entry)
        available = version_numbers(base, saved_models_only=True)
        wanted = self._wanted(entry, available)
        with self.lock:
            loaded = dict(self.models.get(entry.name, {}))
        for version in wanted:
            path = base / str(version)
            if version in loaded or not self._due(path):
                continue
            stamp = _stamp(path)  # before loading: a change during the load means try again
            try:
                loaded[version] = Servable(entry.name, version, path)
                self.failed.pop(path, None)
                log.info("loaded %s version %d", entry.name, version)
            except Exception as exc:  # a broken export must not stop the others
                self._record_failure(path, stamp, f"cannot load {entry.name} version "
                                     f"{version}: {' '.join(str(exc).split())[:300]}")
        serving = {v: s for v, s in loaded.items() if v in wanted} or loaded
        with self.lock:
            self.models[entry.name] = serving
            self.labels[entry.name] = dict(entry.version_labels)

    def _due(self, path: Path) -> bool:
        failure = self.failed.get(path)
        return failure is None or failure.stamp != _stamp(path) \
            or time.monotonic() >= failure.retry_at

    def _record_failure(self, path: Path, stamp: tuple, message: str) -> None:
        previous = self.failed.get(path)
        again = previous is not None and previous.stamp == stamp
        attempts = previous.attempts + 1 if again else 0
        delay = min(MAX_RETRY_SECONDS, self.poll_seconds * 2 ** min(attempts + 1, 30))
        self.failed[path] = _Failure(stamp, attempts, time.monotonic() + delay)
        if again:
            log.debug("%s (attempt %d; next in %.0f s)", message, attempts + 1, delay)
        else:
            log.error("%s (trying again when its files change, or in %.0f s)", message, delay)

    def get(self, name: str, version: int | None = None, label: str = "") -> Servable:
        with self.lock:
            versions = self.models.get(name)
            labels = self.labels.get(name, {})
            names = sorted(self.models)
        if versions is None:
            raise ServingError("NOT_FOUND", f"no model {name!r}; serving: "
                               f"{', '.join(names) or 'none'}")
        if label:
            if label not in labels:
                raise ServingError("NOT_FOUND", f"model {name} has no version label {label!r}")
            version = labels[label]
        if not versions:
            raise ServingError("NOT_FOUND", f"model {name} has no loaded version yet")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise ServingError("NOT_FOUND", f"model {name} version {version} is not loaded "
                               f"(loaded: {', '.join(map(str, sorted(versions)))})")
        return versions[version]

    def loaded(self, name: str) -> list[Servable]:
        self.get(name)
        with self.lock:
            return [self.models[name][v] for v in sorted(self.models[name])]


@dataclasses.dataclass
class _Failure:
    stamp: tuple[int, int]  # the folder's (newest mtime, file count) when it failed
    attempts: int
    retry_at: float  # time.monotonic()


def _stamp(path: Path) -> tuple[int, int]:
    """(newest mtime, number of files) under a version folder: changes while it is copied."""
    newest, count = path.stat().st_mtime_ns, 0
    for item in path.rglob("*"):
        try:
            newest, count = max(newest, item.stat().st_mtime_ns), count + 1
        except OSError:  # removed while listed
            pass
    return newest, count

