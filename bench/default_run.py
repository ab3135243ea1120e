"""The default job: `python -m trainer.task --model attention_lstm`, timed, and its samples checked.

Issue 3's bar: under 10 minutes on a 2-core CPU, and samples that are music: not one repeated
token, not silence, at least 8 distinct pitches and 3 distinct durations.

    python bench/default_run.py [--job-dir /tmp/default-job]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocessing import read_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job-dir", default="/tmp/composer-default-job")
    parser.add_argument("extra", nargs="*", help="more flags for trainer.task")
    args = parser.parse_args()
    shutil.rmtree(args.job_dir, ignore_errors=True)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainer.task", "--model", "attention_lstm",
                    "--job-dir", args.job_dir, *args.extra], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    minutes = (time.perf_counter() - began) / 60
    print(f"python -m trainer.task --model attention_lstm: {minutes:.1f} min (goal < 10)")
    for midi in sorted(Path(args.job_dir, "samples").glob("*.mid")):
        piece = read_file(midi)[0]
        onsets = collections.Counter(piece.start.round(3).tolist())
        top = max(collections.Counter(piece.pitch.tolist()).values()) / max(len(piece), 1)
        print(f"{midi.name}: {len(piece)} notes, {len(onsets)} onsets, "
              f"{len(set(piece.pitch.tolist()))} pitches, "
              f"{len(set(piece.duration.round(3).tolist()))} durations, "
              f"most common pitch {top:.0%} of notes")


if __name__ == "__main__":
    main()
