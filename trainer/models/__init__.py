"""The model registry: one module per family, registered by name in `MODELS`."""

from __future__ import annotations

import dataclasses
import types
from typing import Callable

from trainer import data as data_lib
from trainer.models import attention_lstm, bilstm, lstm, midinet, seq2seq


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its builder, the representations it takes and its default hparams.

    A module may define `make_arrays(folder, split, spec, config) -> (x, y)` when it does not
    learn next-step prediction, `callbacks(hp) -> list` for its own schedules, `LAST_ONLY = True`
    when it sees whole windows and `IS_GAN = True` when it has no loss to monitor.
    """

    build: Callable
    representations: tuple[str, ...]
    defaults: dict
    last_only: bool = False
    custom_objects: dict = dataclasses.field(default_factory=dict)
    make_arrays: Callable | None = None
    callbacks: Callable = lambda hp: []
    is_gan: bool = False

    @classmethod
    def of(cls, module: types.ModuleType) -> "Family":
        return cls(module.build, module.REPRESENTATIONS, module.DEFAULTS,
                   getattr(module, "LAST_ONLY", False), getattr(module, "CUSTOM_OBJECTS", {}),
                   getattr(module, "make_arrays", None),
                   getattr(module, "callbacks", lambda hp: []), getattr(module, "IS_GAN", False))

    def arrays(self, folder, split: str, spec: data_lib.DataSpec, config):
        """(inputs, targets) of a split for this family."""
        if self.make_arrays is not None:
            return self.make_arrays(folder, split, spec, config)
        return data_lib.next_step_arrays(folder, split, spec, config.seq_len,
                                         last_only=self.last_only)

    def primer(self, arrays):
        """The first input window, to prime samples; None for families that take no primer."""
        x = arrays[0]
        return None if isinstance(x, dict) else x[0]


MODELS: dict[str, Family] = {
    "lstm": Family.of(lstm),
    "bilstm": Family.of(bilstm),
    "attention_lstm": Family.of(attention_lstm),
    "seq2seq": Family.of(seq2seq),
    "midinet": Family.of(midinet),
}
