"""TensorFlow without its C++ start-up noise (CUDA probing, cuInit errors, oneDNN notices)."""

from __future__ import annotations

import contextlib
import os
import sys


def quiet_tensorflow(verbose: bool | None = None) -> None:
    """Imports TensorFlow with its C++ logs silenced, unless `verbose` (default: whether the
    command line has --verbose). Call it before anything imports TensorFlow."""
    if verbose is None:
        verbose = "--verbose" in sys.argv[1:]
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():  # some lines come before TensorFlow reads that variable
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for the block, so C++ writes vanish too."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
