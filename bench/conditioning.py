"""Does a conditional model follow `--key` and `--density`? Samples from an exported conditional
model, measured against the same requests without the setting (the primer's own condition),
in one run.

- key: for each requested key, the share of generated notes whose pitch class is in that key's
  scale (major, or natural minor), with the key set and without it (same primers, same seeds);
- density: for each requested density, the note events per grid step of the samples.

    python bench/conditioning.py [--model saved_models/lstm] [--samples 10]

Without --model (or when the folder is missing) it trains one first: `lstm` 2 x 256 with
its default condition, 15 epochs on the Bach chorales (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from preprocessing import notes  # noqa: E402
from preprocessing.readers import corpus_paths, read_file  # noqa: E402
from preprocessing.transforms import KEY_INDEX  # noqa: E402
from serving.composer import Composer  # noqa: E402

MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
KEYS = ("C", "F#", "Eb", "Am", "C#m")
DENSITIES = (0.15, 0.3, 0.5)


def in_key_share(events: list[str], key: str) -> float:
    index = KEY_INDEX[key]
    scale = {(index % 12 + d) % 12 for d in (MINOR if index >= 12 else MAJOR)}
    pitches = [p for e in events if e for p in notes.token_pitches(e.split("|")[0])]
    return float(np.mean([p % 12 in scale for p in pitches])) if pitches else 0.0


def density(events: list[str]) -> float:
    parsed = [notes.parse_event_string(e) for e in events if e]
    steps = sum(s for _, _, s in parsed)
    return sum(t != notes.REST for t, _, _ in parsed) / max(steps, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/tmp/composer-conditioning/saved_models/lstm")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=128)
    args = parser.parse_args()
    if not Path(args.model).exists():
        model = Path(args.model)
        subprocess.run([sys.executable, "-m", "trainer.task", "--model", "lstm", "--epochs", "15",
                        "--hparams", "layers=2,units=256", "--job-dir",
                        str(model.parent.parent / "job"), "--export-dir", str(model.parent),
                        "--export-name", model.name, "--sample-every", "0"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    composer = Composer(args.model)
    pieces = [read_file(p)[0] for p in corpus_paths("bach")[-args.samples:]]

    def sample(piece, seed, key="", dens=None):
        return composer.generate(piece, args.steps, seed=seed, key=key, density=dens)

    def events(tokens) -> list[str]:
        return [t.decode() if isinstance(t, bytes) else str(t) for t in tokens[0]]

    print(f"model: {args.model}; {args.samples} primers (the last Bach chorales), "
          f"{args.steps} events each")
    print("| requested key | in-key share, key set | in-key share, primer's condition | ratio |")
    print("|---|---|---|---|")
    results = [sample(p, i) for i, p in enumerate(pieces)]
    free = [events(r.outputs["tokens"]) for r in results]
    primers = [events(r.inputs["primer"]) for r in results]
    for key in KEYS:
        with_key = np.mean([in_key_share(events(sample(p, i, key).outputs["tokens"]), key)
                            for i, p in enumerate(pieces)])
        without = np.mean([in_key_share(s, key) for s in free])
        print(f"| {key} | {with_key:.3f} | {without:.3f} | {with_key / max(without, 1e-9):.2f}x |")
    print()
    print("| requested density | measured (mean ± sd) |")
    print("|---|---|")
    measured = [density(s) for s in free]
    print(f"| primer's ({np.mean([density(p) for p in primers]):.2f}) | "
          f"{np.mean(measured):.3f} ± {np.std(measured):.3f} |")
    for dens in DENSITIES:
        measured = [density(events(sample(p, i, dens=dens).outputs["tokens"]))
                    for i, p in enumerate(pieces)]
        print(f"| {dens} | {np.mean(measured):.3f} ± {np.std(measured):.3f} |")


if __name__ == "__main__":
    main()
