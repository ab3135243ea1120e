"""Memory and time of a notes model's `log_likelihood` on long inputs: each length is scored in
a fresh process (its peak resident memory is the whole process's, model load included),
beside a fresh process scoring 64 events, in one run.

The signature runs the decoder's own layers over the whole sequence, its attention over a band
of the layer's width (`trainer.decoders.Recurrent.every_position`): memory should grow with the
length times that width, where the Keras attention layer scores every pair of steps (a piece of
11,445 events asked it for 33 GB). The events are a four-voice C major cadence repeated.

    python bench/likelihood_memory.py [--model saved_models/attention_lstm]
                                      [--lengths 1024 8192 32768]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CADENCE = ["E5|4|0", "C5|4|0", "G4|4|0", "C3|4|4", "D5|4|0", "B4|4|0", "G4|4|0", "G2|4|4",
           "C5|8|0", "G4|8|0", "E4|8|0", "C3|8|8"]
SHORT = 64


def score(model: str, length: int) -> tuple[float, float]:
    """(seconds of one `log_likelihood` call on `length` events, mean NLL per counted event)."""
    import numpy as np
    import tensorflow as tf

    from serving.transports import resolve

    signature = tf.saved_model.load(str(resolve(model))).signatures["log_likelihood"]
    events = tf.constant([[CADENCE[i % len(CADENCE)] for i in range(length)]])
    start = time.perf_counter()
    out = signature(events=events)
    seconds = time.perf_counter() - start
    counted = out["counted"].numpy()
    return seconds, float(np.sum(out["nll"].numpy()) / max(counted.sum(), 1))


def one(model: str, length: int) -> None:
    seconds, nll = score(model, length)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{length}\t{seconds:.2f}\t{peak_gb:.2f}\t{nll:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="saved_models/attention_lstm",
                        help="an exported notes model: a version folder or its parent")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192, 32768])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.model, args.one)
    print(f"model {args.model}; each length in a fresh process; peak = its resident maximum")
    print("| events | seconds | peak GB | peak / short piece's | NLL per event |")
    print("|---|---|---|---|---|")
    base = None
    for length in [SHORT, *args.lengths]:
        line = subprocess.run([sys.executable, __file__, "--model", args.model, "--one",
                               str(length)], check=True, capture_output=True, text=True)
        n, seconds, peak, nll = line.stdout.strip().splitlines()[-1].split("\t")
        base = base or float(peak)
        print(f"| {n} | {seconds} | {peak} | {float(peak) / base:.2f} | {nll} |", flush=True)


if __name__ == "__main__":
    main()
