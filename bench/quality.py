"""A quality run anyone can repeat: each model family trained at a stated budget on the Bach
chorales (train split), evaluated on the held-out test split, one table printed.

    python bench/quality.py [--out /tmp/composer-quality] [--samples 10] [--steps 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# row name → (family, representation, epochs, hparams, other trainer flags): sized to train in
# minutes on 2 CPU cores
BUDGETS = {
    "lstm": ("lstm", "notes", 15, "layers=2,units=256", ()),
    "lstm_condition": ("lstm", "notes", 15, "layers=2,units=256,condition=true", ()),
    "bilstm": ("bilstm", "notes", 10, "layers=2,units=256", ()),
    "attention_lstm": ("attention_lstm", "notes", 30, "", ()),
    "seq2seq": ("seq2seq", "pianoroll", 10, "units=256,layers=2", ()),
    "midinet": ("midinet", "bars", 10, "", ()),
    # segment models learn from few windows: short segments and small batches give more steps
    "vae": ("vae", "pianoroll", 20, "anneal_epochs=5", ("--seq-len", "32", "--batch-size", "16")),
    "wgan_gp": ("wgan_gp", "pianoroll", 20, "", ()),
    "wgan_gp_dcrnn": ("wgan_gp", "pianoroll", 20, "generator=dcrnn", ()),
    "rnn_nade": ("rnn_nade", "pianoroll", 20, "learning_rate=0.002", ("--steps-per-quarter", "1",
                 "--augment", "2", "--seq-len", "32", "--batch-size", "16", "--patience", "4")),
}


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/tmp/composer-quality")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=list(BUDGETS))
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for name in args.models:
        family, rep, epochs, hparams, flags = BUDGETS[name]
        began = time.perf_counter()
        run(["trainer.task", "--model", family, "--representation", rep, "--epochs", str(epochs),
             "--hparams", hparams, "--job-dir", str(out / "jobs" / name), "--sample-every", "0",
             "--export-dir", str(out / "saved_models"), "--export-name", name, *flags])
        minutes = (time.perf_counter() - began) / 60
        run(["evaluation", "--model", str(out / "saved_models" / name),
             "--data", "corpus:bach", "--data-split", "test", "--train-data", "corpus:bach",
             "--train-split", "train", "--samples", str(args.samples), "--steps",
             str(args.steps), "--seed", "1", "--out", str(out / "eval" / name)])
        report = json.loads((out / "eval" / name / "report.json").read_text())
        like = report["likelihood"]
        nll = like.get("nll_per_event", like.get("nll_per_frame"))
        budget = " ".join([f"{epochs} ep, {hparams or 'defaults'}", *flags])
        rows.append([name, rep, budget, f"{minutes:.1f}",
                     "n/a" if nll is None else f"{nll:.2f}",
                     f"{like['perplexity']:.1f}" if "perplexity" in like else
                     f"{like['f1']:.2f}" if "f1" in like else "n/a",
                     f"{report['features']['overlap_mean']:.3f}",
                     str(report["copying"]["longest_copied_run"]),
                     f"{report['copying']['ngram8_overlap']:.3f}",
                     f"{report['degeneracy']['most_common_share']:.3f}",
                     str(report["degeneracy"]["longest_repeat"])])
    header = ["model", "representation", "budget", "train min", "held-out NLL",
              "perplexity / F1", "overlap mean", "longest copied run", "8-gram overlap",
              "top token share", "longest repeat"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
