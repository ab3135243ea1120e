"""Where a trained `vae` composes from: a Gaussian fitted to its codes of real segments, or the
prior N(0, I).

The vae's `generate` walks in latent space and decodes each step to a segment. With beta 0.2
and free bits, the codes of real segments cover only part of the prior, and a latent drawn
outside them can decode to a burst of keys. The walk therefore draws from the Gaussian with the
codes' moments (`MusicVAE.latent_prior`, moving averages kept in training). This bench shows
what that buys on one trained model:
- the codes' spread: the aggregate posterior's variance per dimension (the prior's is 1);
- the same model exported twice, walking from the fitted Gaussian and from the prior, each
  evaluated as the quality gate does (`python -m evaluation`, 10 samples of 128 frames from
  the chorales' held-out split, seed 1): notes per sample and the gate's floors
  (`evaluation.floors`).

    python bench/vae_latent.py JOB_DIR [--out /tmp/vae-latent]   # a vae's job folder
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.quiet import quiet_tensorflow  # noqa: E402

FLOORS = ("note density / held-out", "polyphony overlap", "overall overlap",
          "lowest feature overlap", "interpolation end F1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("job", type=Path, help="a vae's job folder (model.keras, data/)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vae-latent"))
    args = parser.parse_args(argv)
    quiet_tensorflow(False)
    import keras
    import numpy as np
    import tensorflow as tf

    from evaluation import floors
    from trainer import data as data_lib
    from trainer import export
    from trainer.models import MODELS

    model = keras.saving.load_model(args.job / "model.keras",
                                    custom_objects=MODELS["vae"].custom_objects)
    folder = (args.job / "data").resolve()
    spec = data_lib.spec_of(folder)
    segments = data_lib.segment_arrays(folder, "validation", model.segment)
    mean, log_var = (t.numpy() for t in model.encode(tf.constant(segments)))
    print(f"{len(segments)} held-out segments of {model.segment} frames, latent {model.latent}: "
          f"aggregate posterior variance {(mean.var(0) + np.exp(log_var).mean(0)).mean():.2f} "
          "a dimension (the prior's 1.00)")
    walks = {"fitted Gaussian": None, "prior N(0, I)": (np.zeros(model.latent),
                                                         np.eye(model.latent))}
    print("| walk from | notes per sample | "
          + " | ".join(FLOORS) + " | floors |")
    print("|" + "---|" * (len(FLOORS) + 3))
    for name, moments in walks.items():
        if moments is not None:
            model.posterior_mean.assign(moments[0])
            model.posterior_moment.assign(moments[1])
        target = args.out / name.split()[0]
        path = export.export(model, "vae", spec, model.segment, target / "saved_models", "vae")
        subprocess.run([sys.executable, "-m", "evaluation", "--model", str(path),
                        "--data", "corpus:bach", "--data-split", "test", "--train-data",
                        "corpus:bach", "--train-split", "train", "--samples", "10", "--steps",
                        "128", "--seed", "1", "--out", str(target / "eval")],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        report = json.loads((target / "eval" / "report.json").read_text())
        values = {floor.name: value for floor, value, _ in floors.check(report)}
        short = floors.shortfalls(name, report)
        print(f"| {name} | {' '.join(map(str, report['generated_notes']))} | "
              + " | ".join(f"{values[f]:.3g}" for f in FLOORS)
              + f" | {'pass' if not short else f'{len(short)} below'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
