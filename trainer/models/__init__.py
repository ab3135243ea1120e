"""The model registry: one module per family, registered by name in `MODELS`.

A family's module (and TensorFlow with it, without its C++ start-up noise) is imported when the
family is first looked up, so a command parses its flags, and answers `--help` or a mistyped
one, before TensorFlow loads.
"""

from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import MutableMapping

from preprocessing import dataset
from preprocessing.notes import Vocabulary
from serving.quiet import quiet_tensorflow
from trainer import data as data_lib
from trainer import sampling


class Family:
    """A model family: a module with `build(spec, hp, seq_len)`, `REPRESENTATIONS` and `DEFAULTS`.

    Next-step prediction is the default; a module overrides a part by defining it:
    `make_arrays(folder, split, spec, config) -> (x, y)`, `primer(x)`, `sample(model, spec,
    primer, steps, temperature, seed, seq_len)`, `to_piece(spec, steps, vocab)` (also given
    an item of an encoded split), `with_primer(spec, primer, steps, vocab)`,
    `callbacks(hp) -> list`, `LAST_ONLY = True` (sees whole windows, trains on the last target),
    `WINDOW_STRIDE` (steps between training windows, default half a window),
    `IS_GAN = True` (no loss to monitor), `MONITOR` (the logged value early stopping and
    checkpoints watch, default "loss"), `GENERATES = False` (a model that refines music rather
    than writing it: no samples), `CUSTOM_OBJECTS` (for loading saved models),
    `CHOICES` (the allowed values of string hparams), `EPOCHS` (the default budget, 30),
    `TRAINING` (its own defaults of the data and training flags that `trainer.config.TRAINING`
    lists, e.g. a grid or window length; part of its budget), `MINUTES` (what that budget took
    on 2 CPU cores, measured by bench/quality.py),
    `Export` (its serving module: an
    `trainer.export.Exported` subclass declaring its signatures and in-graph decoding; default:
    the next-step families' `NextStepExport`).
    """

    def __init__(self, module: types.ModuleType):
        self.module = module
        self.build = module.build
        self.representations: tuple[str, ...] = module.REPRESENTATIONS
        self.defaults: dict = module.DEFAULTS
        self.last_only: bool = getattr(module, "LAST_ONLY", False)
        self.window_stride: int | None = getattr(module, "WINDOW_STRIDE", None)
        self.is_gan: bool = getattr(module, "IS_GAN", False)
        self.custom_objects: dict = getattr(module, "CUSTOM_OBJECTS", {})
        self.choices: dict = getattr(module, "CHOICES", {})
        self.monitor: str = getattr(module, "MONITOR", "loss")
        self.generates: bool = getattr(module, "GENERATES", True)
        self.plain_loss = not self.is_gan and not hasattr(module, "make_arrays")
        if hasattr(module, "Export"):
            self.exporter = module.Export
        else:
            from trainer.models.next_step_export import NextStepExport

            self.exporter = NextStepExport
        self.epochs: int = getattr(module, "EPOCHS", 30)  # the default budget
        self.training: dict = getattr(module, "TRAINING", {})
        self.minutes: float | None = getattr(module, "MINUTES", None)

    @property
    def description(self) -> str:
        """The module docstring's first paragraph, on one line."""
        text = (self.module.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(text.split())

    @property
    def budget(self) -> str:
        """Its default budget: epochs and its own training flags."""
        flags = " ".join(_flag(k, v) for k, v in self.training.items())
        return f"{self.epochs} epochs" + (f", {flags}" if flags else "")

    def markdown_row(self, name: str) -> str:
        """The family's row of docs/MODELS.md."""
        hparams = ", ".join(f"{k} {v}" for k, v in self.defaults.items())
        minutes = "" if self.minutes is None else f"{self.minutes:g}"
        return (f"| `{name}` | {', '.join(self.representations)} | "
                f"{self.description.split(': ', 1)[-1]} | {self.budget} | {minutes} | "
                f"{hparams} |")

    def describe(self) -> str:
        """What `python -m trainer.task --list-models` prints for the family."""
        hparams = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        hparams += f"; budget: {self.budget}" + (
            "" if self.minutes is None else f" (~{self.minutes:g} min on 2 CPU cores)")
        choices = "; ".join(f"{k}: {' | '.join(map(str, v))}" for k, v in self.choices.items())
        signatures = inspect.getdoc(self.exporter) or ""
        return "\n".join(line for line in [
            self.description,
            f"  representations: {', '.join(self.representations)}",
            f"  hparams (defaults): {hparams}",
            f"  choices: {choices}" if choices else "",
            "  " + signatures.replace("\n", "\n  ") if signatures else ""] if line)

    def arrays(self, folder, split: str, spec: data_lib.DataSpec, config):
        """(inputs, targets) of a split for this family."""
        if hasattr(self.module, "make_arrays"):
            return self.module.make_arrays(folder, split, spec, config)
        x, y = data_lib.next_step_arrays(folder, split, spec, config.seq_len,
                                         last_only=self.last_only, stride=self.window_stride)
        if not config.hparams.get("condition"):
            return x, y
        from trainer import conditions
        from trainer.models import common

        tokens = Vocabulary.load(folder / "vocab.json").tokens \
            if spec.representation == "notes" else None
        return {common.input_name(spec): x,
                "condition": conditions.of_windows(x, spec.representation, tokens)}, y

    def primer(self, x):
        """What `sample` continues, taken from a split's inputs."""
        if hasattr(self.module, "primer"):
            return self.module.primer(x)
        return {k: v[0] for k, v in x.items()} if isinstance(x, dict) else x[0]

    def sample(self, model, spec, primer, steps: int, temperature: float = 1.0, seed: int = 0,
               seq_len: int = 64):
        """Continues `primer` in NumPy (the callback's samples, the in-graph loops' reference)."""
        if hasattr(self.module, "sample"):
            return self.module.sample(model, spec, primer, steps, temperature, seed, seq_len)
        window = seq_len if self.last_only else None  # causal models read their whole history
        return sampling.sample(model, spec, primer, steps, temperature, seed, window)

    def to_piece(self, spec, steps, vocab=None):
        return getattr(self.module, "to_piece", sampling.to_piece)(spec, steps, vocab)

    def with_primer(self, spec, primer, steps, vocab=None):
        """`sample`'s primer and new steps as one piece, and where the primer ends in quarter
        notes (0.0 where the primer is not music: a GAN's noise, midinet's chords)."""
        return getattr(self.module, "with_primer", sampling.with_primer)(spec, primer, steps,
                                                                          vocab)

    def split_pieces(self, folder, split: str, spec, vocab=None, most: int = 64) -> list:
        """Up to `most` pieces of an encoded split as the family writes music, spread over the
        split (its items are in file order, a piece's transposed variants side by side): what
        its samples are measured against."""
        items = dataset.load_split(folder, split)
        return [self.to_piece(spec, item, vocab)
                for item in items[::max(1, -(-len(items) // most))]]

    def callbacks(self, hp: dict) -> list:
        return self.module.callbacks(hp) if hasattr(self.module, "callbacks") else []


def _flag(name: str, value) -> str:
    """A training setting as `trainer.task` takes it: `--seq-len 32`, `--to-c`, `--no-to-c`."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value}"


class Registry(MutableMapping):
    """Family name → `Family`, built from its module's path on first lookup; names and
    membership need no import. `registry[name] = Family(module)` registers one at run time."""

    def __init__(self, modules: dict[str, str]):
        self._modules = dict(modules)
        self._families: dict[str, Family] = {}

    def __getitem__(self, name: str) -> Family:
        if name not in self._families:
            path = self._modules[name]  # an unknown name is a KeyError, before any import
            quiet_tensorflow()  # before the family's module imports it
            self._families[name] = Family(importlib.import_module(path))
        return self._families[name]

    def __setitem__(self, name: str, family: Family) -> None:
        self._modules[name] = family.module.__name__
        self._families[name] = family

    def __delitem__(self, name: str) -> None:
        del self._modules[name]
        self._families.pop(name, None)

    def __contains__(self, name) -> bool:
        return name in self._modules

    def __iter__(self):
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __repr__(self) -> str:
        return f"Registry({self._modules!r})"


MODELS = Registry({
    "lstm": "trainer.models.lstm",
    "bilstm": "trainer.models.bilstm",
    "attention_lstm": "trainer.models.attention_lstm",
    "seq2seq": "trainer.models.seq2seq",
    "midinet": "trainer.models.midinet",
    "vae": "trainer.models.vae",
    "wgan_gp": "trainer.models.wgan_gp",
    "refine": "trainer.models.refine",
    "rnn_nade": "trainer.models.rnn_nade",
})


def models_markdown() -> str:
    """docs/MODELS.md: every registered family's row (`python -m trainer.task --list-models
    markdown` writes it; a test keeps the file equal to it)."""
    rows = "\n".join(family.markdown_row(name) for name, family in MODELS.items())
    return ("# Model families\n\n"
            "Written by `python -m trainer.task --list-models markdown > docs/MODELS.md` from the\n"
            "registry (`trainer/models/__init__.py`); `--list-models` also prints each family's\n"
            "choices and signatures.\n\n"
            "The budget is what `python -m trainer.task --model NAME` trains with its flags left\n"
            "out; minutes are its training time on 2 CPU cores, measured by `bench/quality.py`\n"
            "(QUALITY.md; blank: not yet measured there).\n\n"
            "| model | representations | what it is | budget (default) | minutes (2 cores) | "
            "hparams (defaults) |\n"
            "|---|---|---|---|---|---|\n" + rows + "\n")
