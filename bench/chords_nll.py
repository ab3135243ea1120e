"""Split notes against chord classes at the same budget, on a collection: the front door's
`attention_lstm` (its defaults: `python -m trainer.task --model attention_lstm`) trained once
with `--chords split` (the default) and once with `--chords classes`, each then evaluated on
the collection's held-out test split (`python -m evaluation`, 10 samples of 128 events, seed 1):
held-out NLL per event and per quarter note, out-of-vocabulary share, polyphony and overall
overlap.

A chord-class model gives no probability to a held-out event whose chord never occurred in
training: its NLL sums the events in its vocabulary only (the OOV share says how many it left
out), so on NLL it is flattered, never penalised. A second table puts both on the same terms:
both encodings are exact on the grid, so the NLL of what starts at one grid step (a chord's
notes, or a rest) is comparable, and it sums both models' NLL over the same steps: those
where the chord-class model has no out-of-vocabulary event (and not the first, which neither
predicts).

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

import numpy as np  # noqa: E402

from bench.quality import train_and_evaluate  # noqa: E402
from bench.tokens import CLASSICAL  # noqa: E402
from evaluation.evaluate import load_pieces, quarters  # noqa: E402
from preprocessing.notes import CHORDS, parse_event_string  # noqa: E402
from serving import contract  # noqa: E402
from serving.composer import Composer  # noqa: E402

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
    pieces = load_pieces(data, "test")
    scored = {chords: [step_nll(Composer(str(out / "saved_models" / chords)), piece)
                       for piece in pieces] for chords in CHORDS}
    # per piece, the steps both models score in full
    shared = [(set(s) - s_out) & (set(c) - c_out)
              for (s, s_out), (c, c_out) in zip(scored["split"], scored["classes"])]
    steps = sum(len(s) for s, _ in scored["split"])
    print(f"\n| {args.collection}: the steps both score ({sum(map(len, shared))} of {steps}) "
          "| NLL per step | NLL per quarter of those pieces |")
    print("|---|---|---|")
    for chords in CHORDS:
        total = sum(nll[t] for (nll, _), common in zip(scored[chords], shared) for t in common)
        print(f"| {chords} | {total / sum(map(len, shared)):.3f} | "
              f"{total / quarters(pieces):.1f} |")


def step_nll(composer: Composer, piece) -> tuple[dict[int, float], set[int]]:
    """For one held-out piece: ({grid step: the model's NLL of the events that start there},
    the steps it does not score in full: the first, which it does not predict, and those with
    an out-of-vocabulary event)."""
    events = contract.primer_steps(piece, composer.metadata(), length=10**9)
    out = composer.call("log_likelihood", {"events": np.asarray([events], object)})
    nll, oov = np.asarray(out["nll"])[0], np.asarray(out["oov"])[0]
    steps = np.cumsum([0] + [parse_event_string(e)[2] for e in events[:-1]])
    by_step: dict[int, float] = {int(steps[0]): 0.0}
    for t, value in zip(steps[1:], nll):
        by_step[int(t)] = by_step.get(int(t), 0.0) + float(value)
    return by_step, {int(steps[0])} | {int(t) for t, bad in zip(steps[1:], oov) if bad}


if __name__ == "__main__":
    main()
