"""Training speed of `wgan_gp` at its defaults, its training step compiled by XLA (`xla=true`,
the default) and by TensorFlow's graph alone (`xla=false`), in one run on the same batches.

Prints, for each: the first step (tracing, and XLA's compiling), then generator updates per
second over `--steps` more (each with the family's `critic_steps` critic updates and their
gradient penalties), and the ratio. The batches are random piano-roll segments at the
chorales' density (one key in twenty): the speed does not depend on what they hold.

    python bench/gan_speed.py [--steps 20] [--generator cnn]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow(False)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer import data as data_lib  # noqa: E402
from trainer.models import wgan_gp  # noqa: E402


def speed(xla: bool, generator: str, steps: int, batch: int = 64) -> tuple[float, float]:
    """(seconds of the first step, generator updates per second after it)."""
    keras.utils.set_random_seed(0)
    segment = wgan_gp.TRAINING["seq_len"]
    model = wgan_gp.build(data_lib.DataSpec("pianoroll"),
                          dict(wgan_gp.DEFAULTS, generator=generator, xla=xla), segment)
    draw = np.random.default_rng(0)
    x = (draw.random((steps + 1, batch, segment, 88)) < 0.05).astype(np.float32)
    y = np.zeros((batch,), np.float32)
    began = time.perf_counter()
    model.train_on_batch(x[0], y)
    first = time.perf_counter() - began
    began = time.perf_counter()
    for b in range(1, steps + 1):
        model.train_on_batch(x[b], y)
    return first, steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--generator", choices=wgan_gp.CHOICES["generator"], default="cnn")
    args = parser.parse_args()
    rates = {}
    print(f"| wgan_gp {args.generator}, batch 64, {wgan_gp.DEFAULTS['critic_steps']} critic "
          "steps | first step (s) | generator updates / s |")
    print("|---|---|---|")
    for xla in (True, False):
        first, rates[xla] = speed(xla, args.generator, args.steps)
        print(f"| xla={str(xla).lower()} | {first:.1f} | {rates[xla]:.2f} |", flush=True)
    print(f"XLA / graph: {rates[True] / rates[False]:.2f}x")


if __name__ == "__main__":
    main()
