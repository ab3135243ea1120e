"""The numbered version folders of a model folder, as TF Serving reads them, and what each was
trained on."""

from __future__ import annotations

import json
from pathlib import Path

MAX_DIGITS = 18  # a version is an int64: longer names are not versions
# what a version was trained on (its data, its notes' distributions), beside the SavedModel:
# TF Serving ignores assets.extra
INFO = Path("assets.extra") / "training.json"


def version_numbers(base: str | Path, saved_models_only: bool = False) -> list[int]:
    """The versions under a model folder, oldest first: folders named by ASCII digits (at most
    18; "²" and 20-digit names are not versions), with `saved_models_only` only those that
    hold a saved_model.pb."""
    names = (p for p in Path(base).glob("*") if p.is_dir() and p.name.isascii()
             and p.name.isdigit() and len(p.name) <= MAX_DIGITS)
    return sorted(int(p.name) for p in names
                  if not saved_models_only or (p / "saved_model.pb").exists())


def training_info(version_dir: str | Path) -> dict:
    """What a version was trained on ({} for versions exported without it)."""
    try:
        info = json.loads((Path(version_dir) / INFO).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
