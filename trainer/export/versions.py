"""Model folders as TF Serving reads them: atomic numbered versions and `models.config`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from serving.versions import INFO, training_info, version_numbers

__all__ = ["INFO", "save_version", "training_info", "versions", "write_models_config"]


def versions(base: str | Path) -> list[int]:
    """The version numbers under a model folder, oldest first."""
    return version_numbers(base)


def save_version(module, signatures: dict, base: Path, info: dict | None = None) -> Path:
    """Saves `module` as `base/<next version>/`: written into a hidden folder beside the
    versions and renamed into place, so a server polling the folder never sees half a model.
    `info` (what it was trained on) is saved with it as `INFO`."""
    import tensorflow as tf

    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(base)
    staging = base / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(module, str(staging), signatures=signatures)
    if info is not None:
        (staging / INFO).parent.mkdir(exist_ok=True)
        (staging / INFO).write_text(json.dumps(info, indent=1))
    target = base / str((versions(base) or [0])[-1] + 1)
    os.rename(staging, target)
    return target


def _remove_stale_staging(base: Path) -> None:
    """Removes `.staging-PID` folders of exports whose process is gone (killed mid-export)."""
    for folder in base.glob(".staging-*"):
        pid = folder.name.removeprefix(".staging-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_models_config(export_dir: str | Path) -> Path:
    """Lists every model under `export_dir` in TF Serving's model_config_list text format, with
    base paths as the Dockerfile lays them out (/models/NAME)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for folder in sorted(Path(export_dir).iterdir()):
        if folder.is_dir() and versions(folder):
            entry = config.model_config_list.config.add()
            entry.name, entry.base_path = folder.name, f"/models/{folder.name}"
            entry.model_platform = "tensorflow"
    path = Path(export_dir) / "models.config"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text_format.MessageToString(config))
    os.replace(tmp, path)
    return path
