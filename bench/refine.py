"""The refine nets in numbers: a `refine` model trained on chorales, measured on held-out ones
against leaving the notes as they are, in one run.

- duration head: held-out pieces with the training corruption applied (half the notes
  jittered by 1-2 steps or given any length); the share of notes whose duration comes back
  exact, refined vs unrefined; and on clean pieces, the share it leaves exact.
- velocity head: the chorales carry no dynamics (every velocity is the same), so the bench
  gives them rule-made ones (top voice +16, bass -8, downbeat +6, noise +-6 around 64) and
  checks that the model learns them from the data: mean absolute error on held-out pieces
  against the best constant, and the top-voice minus other-voices gap it plays. With performed
  MIDI (`--data my_piano/`) the same training learns from real performances.

    python bench/refine.py [--epochs 15] [--out /tmp/composer-refine]
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

from preprocessing import performance  # noqa: E402
from preprocessing.readers import corpus_paths, read_file  # noqa: E402
from preprocessing.writers import write_midi  # noqa: E402
from serving.composer import Composer  # noqa: E402

HELD_OUT = 40


def with_dynamics(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rule-made velocities for (pitch, onset, duration, velocity) rows sorted top voice first."""
    rows = rows.copy()
    onset = rows[:, 1]
    top = np.r_[True, onset[1:] != onset[:-1]]
    bottom = np.r_[onset[1:] != onset[:-1], True]
    velocity = 64 + 16 * top - 8 * (bottom & ~top) + 6 * (onset % 16 == 0)
    rows[:, 3] = np.clip(velocity + rng.integers(-6, 7, len(rows)), 1, 127)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="/tmp/composer-refine")
    args = parser.parse_args()
    from trainer.models.refine import corrupt

    out, rng = Path(args.out), np.random.default_rng(0)
    paths = corpus_paths("bach")
    train_dir = out / "performed"
    train_dir.mkdir(parents=True, exist_ok=True)
    held = []
    for i, path in enumerate(paths):
        piece = read_file(path)[0]
        rows = with_dynamics(performance.piece_to_rows(piece), rng)
        if i >= len(paths) - HELD_OUT:
            held.append(rows)
        else:
            write_midi(performance.rows_to_piece(rows, qpm=piece.qpm), train_dir / f"{i:03d}.mid")
    subprocess.run([sys.executable, "-m", "trainer.task", "--model", "refine", "--data",
                    str(train_dir), "--epochs", str(args.epochs), "--job-dir", str(out / "job"),
                    "--export-dir", str(out / "saved_models")], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    composer = Composer(out / "saved_models" / "refine")
    meta = composer.metadata()

    def run(rows, durations):  # the signature itself: the bench sets the durations it reads
        result = composer.call("refine", {"pitch": rows[None, :, 0], "onset": rows[None, :, 1],
                                          "duration": durations[None]})
        return result["duration"][0], result["velocity"][0]

    exact = {"corrupted": [], "refined": [], "clean kept": []}
    errors = {"refined": [], "constant": []}
    gaps = {"data": [], "refined": []}
    constant = np.median(np.concatenate([r[:, 3] for r in held]))
    for rows in held:
        truth = rows[:, 2]
        jittered = corrupt(truth, 0.5, meta["max_duration"], rng)
        snapped, velocity = run(rows, jittered)
        kept, _ = run(rows, truth)
        exact["corrupted"].append(np.mean(jittered == truth))
        exact["refined"].append(np.mean(snapped == truth))
        exact["clean kept"].append(np.mean(kept == truth))
        errors["refined"].append(np.abs(velocity - rows[:, 3]).mean())
        errors["constant"].append(np.abs(constant - rows[:, 3]).mean())
        top = np.r_[True, rows[1:, 1] != rows[:-1, 1]]
        gaps["data"].append(rows[top, 3].mean() - rows[~top, 3].mean())
        gaps["refined"].append(velocity[top].mean() - velocity[~top].mean())
    print(f"refine model: {args.epochs} epochs on {len(paths) - HELD_OUT} chorales with "
          f"rule-made dynamics; {HELD_OUT} held out")
    print("| duration head | exact durations |")
    print("|---|---|")
    for name, values in exact.items():
        print(f"| {name} | {np.mean(values):.3f} |")
    print(f"corrupted → refined: {np.mean(exact['refined']) / np.mean(exact['corrupted']):.2f}x "
          "exact durations")
    print("| velocity head | mean abs error | top voice minus the rest |")
    print("|---|---|---|")
    print(f"| refined | {np.mean(errors['refined']):.1f} | {np.mean(gaps['refined']):.1f} |")
    print(f"| constant {constant:.0f} | {np.mean(errors['constant']):.1f} | 0.0 |")
    print(f"| data | 0.0 | {np.mean(gaps['data']):.1f} |")


if __name__ == "__main__":
    main()
