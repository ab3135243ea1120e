"""Generation speed: 500 notes from `lstm` at the seeds' size (3 x 512, window 100) in one call of
the exported `generate` signature, beside the seeds' loop (one `model.predict` per note over a
100-event window) on the same model, in one run.

The seeds' loop does the same work for every note, so it is timed over `--baseline-notes` notes
(default 50) and its 500-note time is that rate times 500; `--baseline-notes 500` times it all.

    python bench/generate_speed.py [--notes 500] [--baseline-notes 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from preprocessing import dataset  # noqa: E402
from preprocessing.notes import Vocabulary, event_string  # noqa: E402
from trainer import data as data_lib  # noqa: E402
from trainer import export  # noqa: E402
from trainer.models import lstm  # noqa: E402

WINDOW = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=500)
    parser.add_argument("--baseline-notes", type=int, default=50)
    args = parser.parse_args()

    import tensorflow as tf

    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    vocab = Vocabulary.load(folder / "vocab.json")
    model = lstm.build(spec, dict(lstm.DEFAULTS), WINDOW)  # 3 x 512; speed needs no training
    primer = data_lib.next_step_arrays(folder, "train", spec, WINDOW)[0][0]

    with tempfile.TemporaryDirectory() as out:
        path = export.export(model, "lstm", spec, WINDOW, out, vocab=vocab)
        generate = tf.saved_model.load(str(path)).signatures["generate"]
        inputs = {"primer": tf.constant([[event_string(e) for e in vocab.decode(primer)]]),
                  "temperature": tf.constant([1.0]), "top_k": tf.constant([0]),
                  "seed": tf.constant([7], tf.int64)}
        generate(num_steps=tf.constant([8]), **inputs)  # warm-up
        began = time.perf_counter()
        tokens = generate(num_steps=tf.constant([args.notes]), **inputs)["tokens"]
        ours = time.perf_counter() - began
    assert tokens.shape == (1, args.notes)

    # the seeds' loop: predict over the last 100 events, sample, append, repeat
    rng = np.random.default_rng(7)
    seq = list(primer)
    model.predict(np.asarray(seq[-WINDOW:])[None], verbose=0)  # warm-up
    began = time.perf_counter()
    for _ in range(args.baseline_notes):
        out = model.predict(np.asarray(seq[-WINDOW:])[None], verbose=0)
        event = []
        for field in ("token", "duration", "shift"):
            logits = out[field][0, -1].astype(np.float64)
            p = np.exp(logits - logits.max())
            event.append(rng.choice(len(p), p=p / p.sum()))
        seq.append(np.asarray(event, np.int32))
    per_note = (time.perf_counter() - began) / args.baseline_notes
    theirs = per_note * args.notes

    print(f"lstm 3x512, window {WINDOW}, vocabulary {spec.vocab_size} tokens, batch 1")
    print(f"exported generate, {args.notes} notes in one call: {ours:.2f} s "
          f"({ours / args.notes * 1000:.2f} ms/note)")
    print(f"seeds' loop (model.predict per note), timed over {args.baseline_notes} notes: "
          f"{per_note * 1000:.0f} ms/note, {theirs:.1f} s for {args.notes}")
    print(f"speed-up: {theirs / ours:.0f}x")


if __name__ == "__main__":
    main()
