"""What the server's drift gauge reads for music like its training data and for music that
strays: a scale for the alarm threshold (README, Monitoring).

`serving_drift_wasserstein` is the Wasserstein distance between the note pitches (semitones) or
durations (quarter notes) of the last 64 pieces a model version served and those of up to 64
training pieces kept with its export (`evaluation.metrics.note_distributions`). This bench reads
the Bach chorales, keeps 64 as the training reference, and prints the gauge for 64 other
chorales as they are (what a model that composes like its corpus would read), transposed, with
their durations halved, and for random pitches; and what one scrape's measure costs.

    python bench/drift.py
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation import metrics as mm  # noqa: E402
from preprocessing.readers import corpus_paths, read_file  # noqa: E402

KEPT = 64


def main() -> int:
    began = time.perf_counter()
    pieces = [p for path in corpus_paths("bach")[:3 * KEPT] for p in read_file(path)
              if len(p)][:2 * KEPT]
    print(f"read {len(pieces)} chorales in {time.perf_counter() - began:.1f} s")
    train, served = pieces[:KEPT], pieces[KEPT:]
    reference = mm.note_distributions(train)
    rng = np.random.default_rng(0)
    cases = {
        "64 other chorales": served,
        "the same, 2 semitones up": [p.transposed(2) for p in served],
        "the same, 5 semitones up": [p.transposed(5) for p in served],
        "the same, durations halved": [dataclasses.replace(p, duration=p.duration / 2)
                                       for p in served],
        "random pitches (21-108), their rhythm": [
            dataclasses.replace(p, pitch=rng.integers(21, 109, len(p)).astype(p.pitch.dtype))
            for p in served],
    }
    print(f"{'served pieces':40s} {'pitch':>7s} {'duration':>9s}")
    for name, case in cases.items():
        drift = mm.distribution_drift(reference, mm.note_distributions(case))
        print(f"{name:40s} {drift['pitch']:7.2f} {drift['duration']:9.3f}")
    began, runs = time.perf_counter(), 20
    for _ in range(runs):
        mm.distribution_drift(reference, mm.note_distributions(served))
    notes = sum(len(p) for p in served)
    print(f"one scrape's measure of {len(served)} pieces ({notes} notes): "
          f"{(time.perf_counter() - began) / runs * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
