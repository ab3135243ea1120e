"""What the server's drift gauge reads for music like its training data and for music that
strays: a scale for the alarm threshold (README, Monitoring).

`serving_drift_wasserstein` is the Wasserstein distance between the note pitches (semitones) or
durations (quarter notes) of the last 64 pieces a model version served and those of up to 64
training pieces kept with its export (`evaluation.metrics.note_distributions`). This bench reads
the Bach chorales, keeps 64 as the training reference, and prints the gauge for 64 other
chorales as they are (what a model that composes like its corpus would read), transposed, with
their durations halved, and for random pitches; and what one scrape's measure costs. With
--model, also what the gauge reads for a trained export composing from the first chorale
(seeds 0..N-1, in process through the server's own `Drift`), and what keeping one served piece
costs the request.

    python bench/drift.py [--model saved_models/rnn_nade/1 --pieces 8 --steps 500]
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


def trained_export(version: Path, pieces: int, steps: int) -> None:
    """The server's drift gauge for `pieces` compositions of a trained export."""
    import threading

    import tensorflow as tf

    from serving import contract
    from serving.metrics import Drift
    from serving.models import Servable

    model = Servable(version.parent.name, int(version.name), version)
    if "notes" not in model.info:
        raise SystemExit(f"{version}: exported without its training notes (retrain to export)")

    class Registry:
        lock, models = threading.Lock(), {model.name: {model.version: model}}

    drift, meta = Drift(Registry()), model.metadata()
    primer = contract.primer_steps(contract.read_primer(None), meta)
    generate, costs = model.signatures["generate"], []
    for seed in range(pieces):
        inputs = contract.generate_inputs(primer, meta, steps, seed=seed)
        outputs = {k: v.numpy() for k, v in generate(**{k: tf.constant(v)
                                                         for k, v in inputs.items()}).items()}
        began = time.perf_counter()
        drift.record(model, "generate", outputs)
        costs.append(time.perf_counter() - began)
    gauges = {(m.name, s.labels.get("feature")): s.value for m in drift.collect()
              for s in m.samples}
    print(f"{version} ({meta['model']}), {pieces} pieces of {steps} steps from the first "
          f"chorale: pitch {gauges[('serving_drift_wasserstein', 'pitch')]:.2f}, duration "
          f"{gauges[('serving_drift_wasserstein', 'duration')]:.3f}, silent pieces "
          f"{gauges[('serving_drift_silent_pieces', None)]:.0f}; keeping one piece: "
          f"{np.median(costs) * 1000:.1f} ms (median)")


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a version folder of a trained export")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    if args.model:
        from serving.quiet import quiet_tensorflow

        quiet_tensorflow(False)
        trained_export(args.model, args.pieces, args.steps)
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
