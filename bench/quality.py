"""The quality gate: each model family trained at its documented budget (`python -m
trainer.task --model NAME`: its `EPOCHS`, `TRAINING` and defaults, as docs/MODELS.md lists
them; the variants below add their flags) on the Bach chorales' train split, evaluated on the
held-out test split, one table printed; exits 1 naming every family and floor it falls short of
(`evaluation.floors`).

    python bench/quality.py [--models attention_lstm rnn_nade] [--out /tmp/composer-quality]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation import floors  # noqa: E402
from trainer.models import MODELS  # noqa: E402

# row name → (family, trainer.task flags beyond the family's budget): one row per family, and
# the documented variants
ROWS = {name: (name, ()) for name in MODELS if MODELS[name].generates} | {
    "wgan_gp_dcrnn": ("wgan_gp", ("--hparams", "generator=dcrnn")),
}


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def train_and_evaluate(name: str, family: str, flags, out: Path, data=("corpus:bach",),
                       samples: int = 10, steps: int = 128) -> tuple[dict, float]:
    """`python -m trainer.task --model FAMILY` at its budget plus `flags`, exported as `name`
    under `out`, then `python -m evaluation` on the test split of `data` (its train split as
    the training pieces), seed 1. Returns (the report, the training's minutes)."""
    began = time.perf_counter()
    run(["trainer.task", "--model", family, "--job-dir", str(out / "jobs" / name),
         "--sample-every", "0", "--export-dir", str(out / "saved_models"), "--export-name",
         name, *flags])
    minutes = (time.perf_counter() - began) / 60
    run(["evaluation", "--model", str(out / "saved_models" / name),
         "--data", *data, "--data-split", "test", "--train-data", *data,
         "--train-split", "train", "--samples", str(samples), "--steps", str(steps),
         "--seed", "1", "--out", str(out / "eval" / name)])
    return json.loads((out / "eval" / name / "report.json").read_text()), minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/composer-quality")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=list(ROWS), choices=ROWS)
    args = parser.parse_args()
    out = Path(args.out)
    rows, failed = [], []
    for name in args.models:
        family, flags = ROWS[name]
        report, minutes = train_and_evaluate(name, family, flags, out, samples=args.samples,
                                             steps=args.steps)
        like, short = report["likelihood"], floors.shortfalls(name, report)
        values = {floor.name: value for floor, value, _ in floors.check(report)}
        failed += short
        nll = like.get("nll_per_event", like.get("nll_per_frame"))
        rows.append([name, report["metadata"]["representation"],
                     " ".join([MODELS[family].budget, *flags]), f"{minutes:.1f}",
                     "n/a" if nll is None else f"{nll:.2f}",
                     f"{like['nll_per_quarter']:.1f}" if "nll_per_quarter" in like else "n/a",
                     *(f"{values[f.name]:.3g}" if f.name in values else "n/a"
                       for f in floors.FLOORS),
                     "pass" if not short else f"{len(short)} below"])
    header = ["model", "representation", "budget", "train min", "held-out NLL",
              "NLL / quarter", *(f.name for f in floors.FLOORS), "floors"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("floors: " + "; ".join(f"{f.name} {f.target()}" for f in floors.FLOORS))
    for line in failed:
        print(f"below a floor: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
