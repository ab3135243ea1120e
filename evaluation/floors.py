"""The quality floors every family's samples must pass at its documented budget (issue 14), read
from an evaluation report; `bench/quality.py` is the gate that applies them to every family.

    python -m evaluation.floors eval/attention_lstm/report.json [--name attention_lstm]

prints each floor with its value and exits 1 naming the model and every floor it falls short of.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Floor:
    name: str
    value: Callable[[dict], float]  # from a report of `evaluation.evaluate`
    low: float = float("-inf")
    high: float = float("inf")
    applies: Callable[[dict], bool] = lambda report: True  # noqa: E731 (a default, not a def)

    def target(self) -> str:
        if self.low == self.high:
            return f"= {self.low:g}"
        if self.high == float("inf"):
            return f">= {self.low:g}"
        if self.low == float("-inf"):
            return f"<= {self.high:g}"
        return f"in {self.low:g}-{self.high:g}"


FLOORS = (
    Floor("silent samples", lambda r: r["degeneracy"]["silent_samples"], 0, 0),
    Floor("silent-step share", lambda r: r["degeneracy"]["silent_step_share"], high=0.3),
    Floor("note density / held-out", lambda r: r["degeneracy"]["note_density_ratio"], 0.5, 2.0),
    Floor("polyphony overlap", lambda r: r["features"]["polyphony"]["overlap"], low=0.6),
    Floor("overall overlap", lambda r: r["features"]["overlap_mean"], low=0.7),
    # the mean of 11 features hid a sample that holds one chord for 26 quarter notes (note
    # length 0.11); the families whose samples look right have every feature at 0.58 or more
    Floor("lowest feature overlap", lambda r: min(
        v["overlap"] for v in r["features"].values() if isinstance(v, dict) and "overlap" in v),
        low=0.3),
    Floor("longest copied run (onsets)", lambda r: r["copying"]["longest_copied_run"], high=16),
    # autoencoders (a model with `interpolate`): held-out segments come back, and blends start
    # and end at their primers
    Floor("reconstruction F1", lambda r: r["likelihood"]["f1"], low=0.6,
          applies=lambda r: bool(r.get("interpolation"))),
    Floor("interpolation end F1", lambda r: r["interpolation"]["end_f1"], low=0.5,
          applies=lambda r: bool(r.get("interpolation"))),
)


def check(report: dict) -> list[tuple[Floor, float, bool]]:
    """(floor, value, passed) for every floor that applies to the report's model, in order."""
    return [(f, v, f.low <= v <= f.high) for f in FLOORS if f.applies(report)
            for v in [float(f.value(report))]]


def shortfalls(name: str, report: dict) -> list[str]:
    """One line per floor the report falls short of: "NAME: FLOOR VALUE, needs TARGET"."""
    return [f"{name}: {floor.name} {value:.3g}, needs {floor.target()}"
            for floor, value, passed in check(report) if not passed]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.floors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="report.json written by python -m evaluation")
    parser.add_argument("--name", help="the model's name in the output (default: the report's)")
    args = parser.parse_args(argv)
    try:
        report = json.loads(Path(args.report).read_text())
        name = args.name or report["model"]
        results = check(report)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {args.report}: not an evaluation report ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    for floor, value, passed in results:
        print(f"{'ok  ' if passed else 'FAIL'} {floor.name}: {value:.3g} (needs {floor.target()})")
    failed = shortfalls(name, report)
    for line in failed:
        print(f"below a floor: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
