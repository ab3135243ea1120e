"""The servable models of a TF Serving model config: loaded SavedModels, their versions, and the
one place requests are checked and run (shared by the gRPC and REST front ends)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from preprocessing.requests import error_message

log = logging.getLogger("serving")


class ServingError(Exception):
    """A request the server refuses: `code` is "NOT_FOUND" or "INVALID_ARGUMENT"."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


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

    def predict(self, signature: str, inputs: dict[str, np.ndarray], max_steps: int) -> dict:
        """Checks `inputs` against the signature, runs it, returns numpy outputs."""
        import tensorflow as tf

        fn = self.signatures.get(signature or "serving_default")
        if fn is None:
            raise ServingError("NOT_FOUND", f"model {self.name} version {self.version} has no "
                               f"signature {signature!r}; it has {', '.join(self.signatures)}")
        expected = fn.structured_input_signature[1]
        missing, unknown = set(expected) - set(inputs), set(inputs) - set(expected)
        if missing or unknown:
            raise ServingError("INVALID_ARGUMENT", f"signature {signature!r} takes inputs "
                               f"{', '.join(sorted(expected)) or '(none)'}; missing: "
                               f"{', '.join(sorted(missing)) or '-'}; unknown: "
                               f"{', '.join(sorted(unknown)) or '-'}")
        tensors = {}
        for key, spec in expected.items():
            value = inputs[key]
            ok = value.dtype.kind in "OSU" if spec.dtype == tf.string \
                else value.dtype == spec.dtype.as_numpy_dtype
            if not ok or not spec.shape.is_compatible_with(value.shape):
                raise ServingError("INVALID_ARGUMENT", f"input {key}: expected "
                                   f"{spec.dtype.name} {spec.shape}, got {value.dtype} "
                                   f"{list(value.shape)}")
            try:
                tensors[key] = tf.constant(value, spec.dtype)
            except (TypeError, ValueError) as exc:
                raise ServingError("INVALID_ARGUMENT", f"input {key}: {exc}") from None
        for key in ("num_steps", "num_bars"):
            if key in tensors and np.size(inputs[key]) and np.max(inputs[key]) > max_steps:
                raise ServingError("INVALID_ARGUMENT",
                                   f"{key} must be <= {max_steps} (this server's cap)")
        try:
            outputs = fn(**tensors)
        except tf.errors.InvalidArgumentError as exc:
            raise ServingError("INVALID_ARGUMENT", error_message(exc.message)) from None
        return {k: np.asarray(v.numpy()) for k, v in outputs.items()}


class ModelRegistry:
    """Models named in a model config; serves each one's newest version (or the versions its
    `model_version_policy` names) and loads new versions as they appear."""

    def __init__(self, config_path: str | Path):
        self.config_path = Path(config_path)
        self.lock = threading.Lock()
        self.models: dict[str, dict[int, Servable]] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.failed: set[tuple[str, int]] = set()  # (path, mtime) of versions that failed
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

        A version that fails to load is logged once (per file change), and the versions that
        work keep serving until a wanted one loads.
        """
        try:
            self.entries = self._read_config()
        except ValueError as exc:  # a config being rewritten: keep serving the old one
            log.warning("%s", exc)
        for entry in self.entries:
            base = self.base_path(entry)
            available = sorted(int(p.name) for p in base.glob("*")
                               if p.name.isdigit() and (p / "saved_model.pb").exists())
            wanted = self._wanted(entry, available)
            with self.lock:
                loaded = dict(self.models.get(entry.name, {}))
            for version in wanted:
                path = base / str(version)
                stamp = (str(path), (path / "saved_model.pb").stat().st_mtime_ns)
                if version in loaded or stamp in self.failed:
                    continue
                try:
                    loaded[version] = Servable(entry.name, version, path)
                    log.info("loaded %s version %d", entry.name, version)
                except Exception as exc:  # a broken export must not stop the others
                    self.failed.add(stamp)
                    log.error("cannot load %s version %d: %s", entry.name, version, exc)
            serving = {v: s for v, s in loaded.items() if v in wanted} or loaded
            with self.lock:
                self.models[entry.name] = serving
                self.labels[entry.name] = dict(entry.version_labels)
        names = {entry.name for entry in self.entries}
        with self.lock:
            for name in set(self.models) - names:
                del self.models[name]
                self.labels.pop(name, None)

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
