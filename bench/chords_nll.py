"""Split notes against chord classes at the same budget, on a collection: the front door's
`attention_lstm` (its defaults: `python -m trainer.task --model attention_lstm`) trained once
with `--chords split` (the default) and once with `--chords classes`, each then evaluated on
the collection's held-out test split (`python -m evaluation`, 10 samples of 128 events, seed 1):
held-out NLL per event and per quarter note, out-of-vocabulary share, polyphony and overall
overlap.

A chord-class model gives no probability to a held-out event whose chord never occurred in
training: its NLL sums the events in its vocabulary only (the OOV share says how many it left
out), so on NLL it is flattered, never penalised.

Collections (`bench/tokens.py`), all from music21's corpus, nothing downloaded:
- `chorales`: corpus:bach;
- `classical`: the corpus's piano and chamber pieces by Beethoven, Mozart, Haydn, Chopin,
  Joplin, Schubert, Schoenberg, Handel and C. P. E. Bach (parsing them takes ~15 min once; the
  parse cache keeps them for the second run).

    python bench/chords_nll.py [--collection classical] [--out /tmp/composer-chords]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quality import train_and_evaluate  # noqa: E402
from bench.tokens import CLASSICAL  # noqa: E402
from preprocessing.notes import CHORDS  # noqa: E402

COLLECTIONS = {"chorales": ["corpus:bach"], "classical": [f"corpus:{c}" for c in CLASSICAL]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", choices=COLLECTIONS, default="classical")
    parser.add_argument("--out", default="/tmp/composer-chords")
    args = parser.parse_args()
    data, out = COLLECTIONS[args.collection], Path(args.out) / args.collection
    print(f"| {args.collection} | train min | held-out OOV events | NLL per event | "
          "NLL per quarter | polyphony overlap | overall overlap |")
    print("|---|---|---|---|---|---|---|")
    for chords in CHORDS:
        report, minutes = train_and_evaluate(chords, "attention_lstm",
                                             ["--data", *data, "--chords", chords], out, data)
        like, features = report["likelihood"], report["features"]
        print(f"| {chords} | {minutes} | {like.get('oov_share', 0.0):.1%} | "
              f"{like['nll_per_event']:.2f} | {like['nll_per_quarter']:.1f} | "
              f"{features['polyphony']['overlap']:.3f} | {features['overlap_mean']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
