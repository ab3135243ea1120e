"""Does a GAN's generator use its noise? From exported `wgan_gp` models: the key probabilities of
`--draws` noise vectors (the `serving_default` signature), and how much of their variance over
noise, frames and keys the noise explains. A generator that has collapsed onto the corpus's
average frame gives nearly the same probabilities for every noise vector; its samples then
differ only by the keys drawn from them, independently, and no voice carries from one frame to
the next.

    python bench/gan_noise.py saved_models/wgan_gp [more exports ...] [--draws 200]

Prints, for each: the noise's share of the probabilities' variance (the rest is the average
segment, the same for every noise), the correlation of two noise vectors' probabilities, the
spread (how far the probabilities move per unit the noise moves, as training logs it, between
`--draws` pairs of noise vectors) and the mean key probability.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow(False)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from serving.transports import resolve  # noqa: E402


def noise_use(path: Path, draws: int, seed: int = 0) -> dict:
    model = tf.saved_model.load(str(path))
    signature = model.signatures["serving_default"]
    width = signature.structured_input_signature[1]["noise"].shape[-1]
    z, other = np.random.default_rng(seed).normal(size=(2, draws, width)).astype(np.float32)
    # [draws, frames, keys] each
    p, q = (signature(noise=tf.constant(x))["probs"].numpy() for x in (z, other))
    average = p.mean(0)
    return {"share": float(1 - average.var() / p.var()),
            "correlation": float(np.corrcoef(p[0].ravel(), p[1].ravel())[0, 1]),
            "spread": float(np.abs(p - q).mean() / np.abs(z - other).mean()),
            "mean_p": float(p.mean())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="saved_models/NAME or a version folder")
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args(argv)
    print("| model | noise's share of the variance | two noises' correlation | spread | mean p |")
    print("|---|---|---|---|---|")
    for name in args.models:
        r = noise_use(resolve(name), args.draws)
        print(f"| {name} | {r['share']:.4f} | {r['correlation']:.4f} | {r['spread']:.4f} "
              f"| {r['mean_p']:.4f} |")


if __name__ == "__main__":
    main()
