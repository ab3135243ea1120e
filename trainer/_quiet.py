"""Imported first by the modules a `trainer` command starts from (the model registry): TensorFlow,
once, without its C++ start-up noise (`serving.quiet`; `--verbose` keeps it). The package itself
imports nothing heavy, so `python -m trainer.generate --help` answers at once."""

from serving.quiet import quiet_tensorflow

quiet_tensorflow()
