"""`python -m preprocessing`: encode a corpus into a dataset folder the trainer reads."""

from __future__ import annotations

import argparse
import sys

from preprocessing.dataset import REPRESENTATIONS, Settings, build
from preprocessing.notes import CHORDS
from preprocessing.pianoroll import ENCODINGS
from preprocessing.piece import InputError
from preprocessing.readers import ReadOptions


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m preprocessing", description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--input", nargs="+", default=["corpus:bach"], metavar="PATH",
                        help="files, folders, globs or corpus:NAME (a music21 corpus)")
    parser.add_argument("--representation", choices=REPRESENTATIONS, default="notes")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--steps-per-quarter", type=int, default=4)
    parser.add_argument("--encoding", choices=ENCODINGS, default="active",
                        help="piano-roll encoding")
    parser.add_argument("--chords", choices=CHORDS, default="split",
                        help="notes: split (a note per event, highest first) or classes (a "
                             "token per chord)")
    parser.add_argument("--max-duration", type=int, default=32, help="notes: steps")
    parser.add_argument("--max-shift", type=int, default=32, help="notes: steps")
    parser.add_argument("--to-c", action="store_true", help="transpose to C major / A minor")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="add ±1..N semitone transpositions of training pieces")
    parser.add_argument("--tracks", default="non-drum", help="non-drum, all, or indices: 0,2")
    limits = ReadOptions()
    parser.add_argument("--max-file-bytes", type=_positive, default=limits.max_bytes,
                        help="skip larger files unread")
    parser.add_argument("--max-notes", type=_positive, default=limits.max_notes,
                        help="skip pieces with more notes")
    parser.add_argument("--max-quarters", type=_positive, default=int(limits.max_quarters),
                        help="skip pieces longer than this many quarter notes")
    parser.add_argument("--max-parse-seconds", type=_positive, default=int(limits.max_seconds),
                        help="skip notation files (MusicXML, ABC, kern) that take longer")
    parser.add_argument("--validation", type=float, default=0.1)
    parser.add_argument("--test", type=float, default=0.1)
    parser.add_argument("--limit", type=int, help="use only the first N files")
    parser.add_argument("--workers", type=int, help="processes (default: one per core)")
    parser.add_argument("--cache-dir", default="default",
                        help="parse cache: $COMPOSER_CACHE or ~/.cache/composer; '' for none")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings(
            representation=args.representation, steps_per_quarter=args.steps_per_quarter,
            encoding=args.encoding, chords=args.chords, max_duration=args.max_duration,
            max_shift=args.max_shift,
            to_c=args.to_c, augment=args.augment, validation=args.validation, test=args.test,
            read=ReadOptions(tracks=args.tracks, max_bytes=args.max_file_bytes,
                             max_notes=args.max_notes, max_quarters=float(args.max_quarters),
                             max_seconds=float(args.max_parse_seconds)))
        summary = build(args.input, args.out, settings, limit=args.limit, workers=args.workers,
                        cache_dir=args.cache_dir or None)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pieces = summary["pieces"]
    print(f"{summary['ok']}/{summary['files']} files ok, {summary['skipped']} skipped; "
          f"pieces train {pieces['train']} / validation {pieces['validation']} / "
          f"test {pieces['test']}; {summary['notes']} notes in {summary['seconds']:.2f} s "
          f"→ {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
