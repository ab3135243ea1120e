"""Training speed: `lstm` at the seeds' size trained seq-to-one (as the seeds did) and then
many-to-many (loss on every position), in one run on the same batches.

Prints targets/s for each and their ratio. Data: the Bach chorales (`notes`), windows of 100.

    python bench/train_speed.py [--batches 3] [--window 100] [--batch-size 128]
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
from trainer.models import lstm  # noqa: E402


def targets_per_second(model, x, y, batches: int, batch_size: int, per_window: int) -> float:
    model.train_on_batch(x[:batch_size], {k: v[:batch_size] for k, v in y.items()})  # warm-up
    began = time.perf_counter()
    for b in range(batches):
        s = slice(b * batch_size, (b + 1) * batch_size)
        model.train_on_batch(x[s], {k: v[s] for k, v in y.items()})
    return batches * batch_size * per_window / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    hp = dict(lstm.DEFAULTS)  # 3 x 512, dropout 0.3, Dense 256
    n = (args.batches + 1) * args.batch_size
    x, y_all = data_lib.next_step_arrays(folder, "train", spec, args.window, stride=1)
    y_all, _ = data_lib.sample_weights(y_all)  # speed only: padding targets as plain zeros
    x, y_all = x[:n], {k: v[:n] for k, v in y_all.items()}
    y_last = {k: v[:, -1] for k, v in y_all.items()}

    seq_to_one = targets_per_second(lstm.build(spec, hp, args.window, last_only=True), x, y_last,
                                    args.batches, args.batch_size, 1)
    many = targets_per_second(lstm.build(spec, hp, args.window), x, y_all, args.batches,
                              args.batch_size, args.window)
    print(f"lstm 3x512, window {args.window}, batch {args.batch_size}, vocabulary "
          f"{spec.vocab_size} tokens, {args.batches} timed batches each")
    print(f"seq-to-one (one target per window, the seeds' setup): {seq_to_one:,.1f} targets/s")
    print(f"many-to-many (a target at every position):            {many:,.1f} targets/s")
    print(f"ratio: {many / seq_to_one:.1f}x")


if __name__ == "__main__":
    main()
