"""A training run's configuration: flags, validated before anything is written."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from preprocessing.piece import InputError
from trainer.models import MODELS

STRATEGIES = ("default", "mirrored", "multiworker")


# what a family's `TRAINING` may set, and the value where it does not
TRAINING = dict(encoding="active", steps_per_quarter=4, to_c=False, augment=0, batch_size=64,
                seq_len=64, patience=5)


@dataclasses.dataclass
class Config:
    """Attributes mirror `python -m trainer.task` flags; `hparams` holds the family's defaults
    overridden by `--hparams`. A setting left None takes the family's budget: `epochs` its
    `EPOCHS`, those of `TRAINING` its `TRAINING` (else the value there)."""

    model: str = "attention_lstm"
    data: tuple[str, ...] = ("corpus:bach",)
    representation: str = ""
    encoding: str | None = None
    chords: str = "split"
    steps_per_quarter: int | None = None
    to_c: bool | None = None
    augment: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seq_len: int | None = None
    hparams: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    job_dir: str = ""
    strategy: str = "default"
    limit: int | None = None
    sample_every: int = 5
    sample_steps: int = 64
    patience: int | None = None
    export_dir: str = "saved_models"
    export_name: str = ""

    def __post_init__(self):
        if self.model not in MODELS:
            raise InputError(f"--model: unknown {self.model!r}; choose from "
                             f"{', '.join(MODELS)}")
        family = MODELS[self.model]
        self.representation = self.representation or family.representations[0]
        if self.representation not in family.representations:
            raise InputError(f"--representation: {self.model} takes "
                             f"{' or '.join(family.representations)}, not {self.representation!r}")
        if self.strategy not in STRATEGIES:
            raise InputError(f"--strategy: unknown {self.strategy!r}; choose from "
                             f"{', '.join(STRATEGIES)}")
        if self.multiworker:
            if not family.plain_loss:
                raise InputError(f"--strategy multiworker: {self.model} trains with its own "
                                 "train_step; use --strategy default or mirrored")
            if "TF_CONFIG" not in os.environ:
                raise InputError("--strategy multiworker needs TF_CONFIG naming the cluster "
                                 "and this task")
        self.epochs = family.epochs if self.epochs is None else self.epochs
        if set(family.training) - set(TRAINING):
            raise ValueError(f"{self.model}: TRAINING sets {set(family.training) - set(TRAINING)}"
                             f"; a family's TRAINING may set {', '.join(TRAINING)}")
        for name, value in {**TRAINING, **family.training}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("epochs", "batch_size", "seq_len", "steps_per_quarter"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1")
        self.hparams = {**family.defaults, **self.hparams}
        for name, choices in family.choices.items():
            if self.hparams[name] not in choices:
                raise InputError(f"--hparams: {name}={self.hparams[name]!r}; choose from "
                                 f"{', '.join(choices)}")
        self.job_dir = self.job_dir or str(Path("jobs") / self.model)

    @property
    def multiworker(self) -> bool:
        """Whether this task is one worker of several (`--strategy multiworker`): its own
        training loop, its own data folder and job folder, and no reuse of a finished job."""
        return self.strategy == "multiworker"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1))


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_hparams(text: str, model: str, representation: str = "") -> dict:
    """`k=v,k2=v2` → dict, each value typed like the family's default.

    Raises:
        InputError: malformed text, an unknown name or a value of the wrong type.
    """
    if model not in MODELS:
        raise InputError(f"--model: unknown {model!r}; choose from {', '.join(MODELS)}")
    defaults = MODELS[model].defaults
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--hparams: expected name=value, got {item!r}")
        if name not in defaults:
            raise InputError(f"--hparams: {model} has no hparam {name!r}; valid: "
                             f"{', '.join(sorted(defaults))}")
        kind, value = type(defaults[name]), value.strip()
        try:
            out[name] = _BOOLS[value.lower()] if kind is bool else kind(value)
        except (KeyError, ValueError):
            raise InputError(f"--hparams: {name}={value!r} is not a {kind.__name__}") from None
    roll_only = {"loss", "alpha", "gamma"} & set(out)
    if roll_only and (representation or MODELS[model].representations[0]) == "notes":
        raise InputError(f"--hparams: {', '.join(sorted(roll_only))} shape piano-roll losses; "
                         "notes models use cross-entropy")
    return out
