"""Training samples' speed: the sample callback's NumPy sampler (`trainer.sampling.sample`,
also the in-graph loops' reference in the tests) continuing a chorale window with the front
door's `attention_lstm` at its defaults (conditional, untrained: speed needs no training), with
the model called as one traced graph (since 2026-12-01) and eagerly (before), in one run, with
the same draws.

    python bench/sample_speed.py [--steps 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from preprocessing import dataset  # noqa: E402
from trainer import data as data_lib  # noqa: E402
from trainer import sampling  # noqa: E402
from trainer.config import Config  # noqa: E402
from trainer.models import MODELS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()

    import numpy as np

    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    config = Config(model="attention_lstm", export_dir="")
    family = MODELS[config.model]
    x, _ = family.arrays(folder, "train", spec, config)
    primer = family.primer(x)
    model = family.build(spec, config.hparams, config.seq_len)

    def timed():
        began = time.perf_counter()
        steps = family.sample(model, spec, primer, args.steps, seed=1, seq_len=config.seq_len)
        return steps, time.perf_counter() - began

    traced, traced_s = timed()
    sampling._traced = lambda m: (lambda inputs: m(inputs, training=False))  # the eager call
    eager, eager_s = timed()
    np.testing.assert_array_equal(traced, eager)
    print(f"attention_lstm at its defaults, {args.steps} steps after a {config.seq_len}-event "
          f"primer: traced {traced_s:.1f} s, eager (before) {eager_s:.1f} s; "
          f"ratio {eager_s / traced_s:.1f}x; the same draws")


if __name__ == "__main__":
    main()
