"""Ingest speed: `python -m preprocessing` on a corpus of piano MIDI files, beside music21's parser.

The corpus is made once from works of ten composers that ship with music21 (all parts merged
into one piano track, 200-4000 notes each, in several transpositions so every file is distinct)
and kept under the cache folder.
Prints files/s and notes/s for the whole command (start-up included, parse cache off), and
music21's `converter.parse` rate on a sample of the same files.

    python bench/ingest.py [--files 1000] [--music21-sample 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing.dataset import cache_root  # noqa: E402
from preprocessing.piece import InputError  # noqa: E402
from preprocessing.readers import corpus_paths, read_file  # noqa: E402
from preprocessing.writers import write_midi  # noqa: E402

COMPOSERS = ("beethoven", "mozart", "chopin", "joplin", "schumann_robert", "schumann_clara",
             "haydn", "schubert", "handel", "cpebach")


def make_corpus(folder: Path, files: int) -> list[Path]:
    """Writes (once) `files` distinct piano MIDI files made from music21's corpus."""
    existing = sorted(folder.glob("*.mid"))
    if len(existing) >= files:
        return existing[:files]
    folder.mkdir(parents=True, exist_ok=True)
    sources = [p for c in COMPOSERS for p in corpus_paths(c)]
    pieces = []
    for path in sources:
        try:
            pieces.extend(p for p in read_file(path) if 200 <= len(p) <= 4000)
        except InputError:
            continue
        if len(pieces) >= 100:
            break
    shifts = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6]
    written = []
    for k in range(files):
        piece = pieces[k % len(pieces)].transposed(shifts[(k // len(pieces)) % len(shifts)])
        written.append(write_midi(piece, folder / f"{k:05d}.mid"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--music21-sample", type=int, default=20)
    args = parser.parse_args()

    files = make_corpus(cache_root() / "bench-piano-midi", args.files)
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "preprocessing", "--input", str(files[0].parent),
                        "--limit", str(len(files)), "--out", out, "--cache-dir", ""],
                       check=True, cwd=Path(__file__).resolve().parents[1],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - began
        summary = json.loads((Path(out) / "report.json").read_text())["summary"]

    from music21 import converter

    sample = files[:args.music21_sample]
    began = time.perf_counter()
    m21_notes = sum(len(converter.parse(f, forceSource=True).flatten().notes) for f in sample)
    m21_seconds = time.perf_counter() - began

    ours = len(files) / seconds
    theirs = len(sample) / m21_seconds
    print(f"corpus: {len(files)} piano MIDI files, {summary['notes']} notes "
          f"({summary['notes'] / len(files):.0f} per file), {summary['skipped']} skipped")
    print(f"python -m preprocessing (whole command, 2 workers, no cache): {seconds:.2f} s, "
          f"{ours:.0f} files/s, {summary['notes'] / seconds:,.0f} notes/s")
    print(f"music21 converter.parse on {len(sample)} of the same files: {m21_seconds:.2f} s, "
          f"{theirs:.2f} files/s, {m21_notes / m21_seconds:,.0f} notes/s (chords count once)")
    print(f"speed-up: {ours / theirs:.0f}x files/s")


if __name__ == "__main__":
    main()
