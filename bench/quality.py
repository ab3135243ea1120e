"""The quality gate: each model family trained at its documented budget (`python -m
trainer.task --model NAME`: its `EPOCHS`, `TRAINING` and defaults, as docs/MODELS.md lists
them; the variants below add their flags) on the Bach chorales' train split, evaluated on the
held-out test split, one table printed; exits 1 naming every family and floor it falls short of
(`evaluation.floors`).

    python bench/quality.py [--models attention_lstm rnn_nade] [--out /tmp/composer-quality]
        [--resume]

Every family at its budget takes hours on 2 cores. Each finished row is kept in
`OUT/rows/NAME.json` (its report, training minutes, date and commit); with `--resume` a row
kept there for the same evaluation settings is not run again (the table shows when and at which
commit each row ran), and a training that was stopped resumes from its job folder's last epoch.
The table also shows how far the samples' outer voices move per step against the held-out
pieces' (`voice_motion_ratio`), not yet a floor (QUALITY.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
                       samples: int = 10, steps: int = 128) -> tuple[dict, str]:
    """`python -m trainer.task --model FAMILY` at its budget plus `flags`, exported as `name`
    under `out`, then `python -m evaluation` on the test split of `data` (its train split as
    the training pieces), seed 1. Returns (the report, the training's minutes: "N (resumed)"
    where a stopped job went on, as its earlier epochs are not counted)."""
    resumed = (out / "jobs" / name).exists()
    began = time.perf_counter()
    run(["trainer.task", "--model", family, "--job-dir", str(out / "jobs" / name),
         "--sample-every", "0", "--export-dir", str(out / "saved_models"), "--export-name",
         name, *flags])
    minutes = f"{(time.perf_counter() - began) / 60:.1f}" + (" (resumed)" if resumed else "")
    run(["evaluation", "--model", str(out / "saved_models" / name),
         "--data", *data, "--data-split", "test", "--train-data", *data,
         "--train-split", "train", "--samples", str(samples), "--steps", str(steps),
         "--seed", "1", "--out", str(out / "eval" / name)])
    return json.loads((out / "eval" / name / "report.json").read_text()), minutes


def commit() -> str:
    """The checkout's short commit, with "+" when it has uncommitted changes to tracked files
    ("unknown" outside a git checkout)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout
    try:
        head, changed = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except OSError:
        return "unknown"
    return (head.strip() or "unknown") + ("+" if changed.strip() else "")


def run_row(name: str, out: Path, samples: int, steps: int, resume: bool) -> dict:
    """One row's result: {report, minutes, date, commit, samples, steps}, from
    `OUT/rows/NAME.json` with `resume` where it was kept for the same samples and steps, else
    trained and evaluated now, and kept there."""
    kept = out / "rows" / f"{name}.json"
    if resume and kept.exists():
        result = json.loads(kept.read_text())
        if (result["samples"], result["steps"]) == (samples, steps):
            return result
    family, flags = ROWS[name]
    report, minutes = train_and_evaluate(name, family, flags, out, samples=samples, steps=steps)
    result = dict(report=report, minutes=minutes, date=datetime.date.today().isoformat(),
                  commit=commit(), samples=samples, steps=steps)
    kept.parent.mkdir(parents=True, exist_ok=True)
    staged = kept.with_suffix(".json.partial")
    staged.write_text(json.dumps(result))
    os.replace(staged, kept)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/composer-quality")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already run into --out (OUT/rows/NAME.json)")
    args = parser.parse_args()
    out = Path(args.out)
    rows, failed = [], []
    for name in args.models:
        family, flags = ROWS[name]
        result = run_row(name, out, args.samples, args.steps, args.resume)
        report, minutes = result["report"], result["minutes"]
        like, short = report["likelihood"], floors.shortfalls(name, report)
        values = {floor.name: value for floor, value, _ in floors.check(report)}
        failed += short
        nll = like.get("nll_per_event", like.get("nll_per_frame"))
        rows.append([name, report["metadata"]["representation"],
                     " ".join([MODELS[family].budget, *flags]), minutes,
                     "n/a" if nll is None else f"{nll:.2f}",
                     f"{like['nll_per_quarter']:.1f}" if "nll_per_quarter" in like else "n/a",
                     *(f"{values[f.name]:.3g}" if f.name in values else "n/a"
                       for f in floors.FLOORS),
                     f"{motion:.2f}" if (motion := report["degeneracy"].get(
                         "voice_motion_ratio")) is not None else "n/a",
                     "pass" if not short else f"{len(short)} below",
                     f"{result['date']} {result['commit']}"])
    header = ["model", "representation", "budget", "train min", "held-out NLL",
              "NLL / quarter", *(f.name for f in floors.FLOORS), "voice motion / held-out",
              "floors", "run"]
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
