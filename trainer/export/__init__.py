"""SavedModel export: a family's serving module saved as the next version of its model folder.

Every family declares its own signatures (`Exported` subclasses in `trainer/models/`); each
export has `metadata` (what a client needs to convert MIDI, including the main signature's
input names) and, for composing families, `generate` (the whole sampling loop in the graph),
documented per family in `python -m trainer.task --list-models`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainer.conditions import of_inputs
from trainer.export.base import DEFAULT_MAX_STEPS, MAX_TEMPERATURE, Exported
from trainer.export.versions import save_version, training_info, versions, write_models_config

__all__ = ["DEFAULT_MAX_STEPS", "MAX_TEMPERATURE", "Exported", "export", "export_trained",
           "module_for", "versions", "write_models_config"]


def module_for(model, family: str, spec, window: int, vocab=None,
               max_steps: int = DEFAULT_MAX_STEPS, conditions=None) -> Exported:
    """The serving module the registered family `family` makes of a trained model."""
    from trainer.models import MODELS

    return MODELS[family].exporter(model, family, spec, window, vocab, max_steps, conditions)


def export(model, family: str, spec, window: int, export_dir: str | Path,
           name: str | None = None, vocab=None, max_steps: int = DEFAULT_MAX_STEPS,
           conditions=None, info: dict | None = None) -> Path:
    """Saves `export_dir/NAME/<next version>/` atomically and updates models.config.

    `conditions`: the training windows' condition vectors, for a conditional model's key
    profiles; `info`: what it was trained on, kept beside the SavedModel.
    """
    module = module_for(model, family, spec, window, vocab, max_steps, conditions)
    target = save_version(module, module.signatures(), Path(export_dir) / (name or family),
                          info)
    write_models_config(export_dir)
    return target


def export_trained(config, spec, model, vocab=None, x=None, reference=None) -> dict:
    """Exports a job's trained model as the next version, unless `config.export_dir` is ''.

    Args:
        config: the job's `trainer.config.Config` (export_dir, export_name, model, seq_len).
        x: the training inputs (a conditional model's key profiles come from their
            conditions).
        reference: the training pieces' `note_distributions`, kept with the export for the
            server's drift gauge.

    Returns:
        {"export": the version folder}, or {} when export is off.
    """
    if not config.export_dir:
        return {}
    info = {"data": list(config.data), "job_dir": config.job_dir}
    if reference is not None:
        info["notes"] = reference
    path = export(model, config.model, spec, config.seq_len, config.export_dir,
                  config.export_name or None, vocab, conditions=of_inputs(x), info=info)
    before = [v for v in versions(path.parent) if v < int(path.name)]
    other = training_info(path.parent / str(before[-1])).get("data") if before else None
    if other is not None and other != info["data"]:  # the server now serves this one instead
        print(f"{path.parent}: version {path.name} (data: {' '.join(info['data'])}) replaces "
              f"version {before[-1]} (data: {' '.join(other)}) as the newest, the one served "
              "and generated from; pass --export-name to keep both", file=sys.stderr,
              flush=True)
    return {"export": str(path)}
