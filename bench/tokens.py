"""The `notes` vocabulary: one token per chord (`--chords classes`) against one per note (`split`).

For each collection, the vocabulary is built from the training split (the dataset's own split by
content digest) and applied to the held-out pieces (validation and test): vocabulary size,
share of held-out events out of vocabulary, and events per quarter note (the price of split:
longer sequences).

Collections, all from music21's corpus (nothing is downloaded):
- `chorales`: corpus:bach, the bundled chorales (four voices);
- `classical`: the corpus's pieces by Beethoven, Mozart, Haydn, Chopin, Joplin, Schubert,
  Schoenberg, Handel and C. P. E. Bach (piano and chamber music: wider chords, more voices).

    python bench/tokens.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocessing import dataset, notes  # noqa: E402
from preprocessing.piece import InputError  # noqa: E402
from preprocessing.readers import content_digest, read_file  # noqa: E402

CLASSICAL = ("beethoven", "mozart", "haydn", "chopin", "joplin", "schubert", "schoenberg",
             "handel", "cpebach")


def collection(name: str) -> list:
    from music21 import corpus

    composers = ("bach",) if name == "chorales" else CLASSICAL
    return [Path(p) for c in composers for p in corpus.getComposer(c)]


def pieces_by_split(paths) -> dict[str, list]:
    out = {"train": [], "held-out": []}
    for path in paths:
        try:
            pieces = read_file(path)
        except InputError:
            continue
        split = dataset.split_of(content_digest(path.read_bytes()))
        out["train" if split == "train" else "held-out"].extend(pieces)
    return out


def main() -> None:
    print("| collection | chords | pieces train / held-out | vocabulary | held-out OOV events "
          "| events per quarter |")
    print("|---|---|---|---|---|---|")
    for name in ("chorales", "classical"):
        split = pieces_by_split(collection(name))
        quarters = sum(p.end for p in split["held-out"])
        for chords in notes.CHORDS:
            train = [[t for t, _, _ in notes.piece_to_events(p, chords=chords)]
                     for p in split["train"]]
            vocab = notes.Vocabulary.build(train, chords=chords)
            held = [t for p in split["held-out"]
                    for t, _, _ in notes.piece_to_events(p, chords=chords)]
            oov = sum(t not in vocab.index for t in held) / max(len(held), 1)
            print(f"| {name} | {chords} | {len(split['train'])} / {len(split['held-out'])} | "
                  f"{len(vocab.tokens)} | {oov:.1%} | {len(held) / quarters:.2f} |")


if __name__ == "__main__":
    main()
