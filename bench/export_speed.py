"""Export time: the in-graph condition of a primer (`trainer.conditions.from_tokens`) traced
alone beside the ragged implementation it replaced (2026-12-01), then families at their
defaults (untrained: export time needs no training) exported and loaded back with AutoGraph
off (the signatures as they are traced now, `trainer.export.base.AUTOGRAPH`) and on (before
2026-12-02), each in a fresh process, as a job or a test worker meets them: AutoGraph keeps
what it converted for the rest of a process's life.

Every exported signature of a conditional notes model traces `from_tokens` once (generate,
serving_default, log_likelihood), so its tracing time is paid three times per export.

    python bench/export_speed.py [--repeats 3] [--models attention_lstm rnn_nade]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from preprocessing import dataset  # noqa: E402
from preprocessing.notes import Vocabulary  # noqa: E402
from trainer import conditions, export, task  # noqa: E402
from trainer import data as data_lib  # noqa: E402
from trainer.config import Config  # noqa: E402
from trainer.models import MODELS  # noqa: E402
from trainer.models.common import input_name  # noqa: E402


def ragged_from_tokens(tokens, shifts, valid, table):
    """`from_tokens` as it was until 2026-12-01: ragged reductions over [B, T, (notes)]."""
    import tensorflow as tf

    names = tf.strings.split(tf.where(valid, tokens, ""), ".")
    pitch = tf.ragged.map_flat_values(table.lookup, names)
    known = pitch >= 0
    counts = tf.reduce_sum(tf.reduce_sum(
        tf.ragged.map_flat_values(lambda p: tf.one_hot(p % 12, 12), pitch)
        * tf.cast(known, tf.float32)[..., None], 2), 1)
    as_float = tf.cast(pitch, tf.float32)
    low = tf.reduce_min(tf.reduce_min(tf.where(known, as_float, 128.0), 2), 1)
    high = tf.reduce_max(tf.reduce_max(tf.where(known, as_float, -1.0), 2), 1)
    boundary = tf.where(valid, tf.cast(shifts, tf.float32), 1.0)
    after = tf.concat([tf.ones_like(boundary[:, :1]), boundary[:, :-1]], 1) > 0
    events = tf.reduce_sum(tf.cast(tf.reduce_any(known, 2) & after, tf.float32), 1)
    steps = tf.reduce_sum(tf.where(valid, tf.cast(shifts, tf.float32), 0.0), 1)
    return conditions._vector(counts, low, high, events / tf.maximum(steps, 1.0))


def trace_seconds(fn, repeats: int) -> float:
    """The best of `repeats` fresh tracings of fn over [None, None] tokens, shifts and mask."""
    import tensorflow as tf

    specs = (tf.TensorSpec([None, None], tf.string), tf.TensorSpec([None, None], tf.int32),
             tf.TensorSpec([None, None], tf.bool))
    best = float("inf")
    for _ in range(repeats):
        table = conditions.pitch_table()
        traced = tf.function(lambda t, s, v: fn(t, s, v, table))
        began = time.perf_counter()
        traced.get_concrete_function(*specs)
        best = min(best, time.perf_counter() - began)
    return best


def export_seconds(name: str) -> dict:
    """The family `name` at its defaults (`python -m trainer.task --model NAME`'s data settings,
    on the bundled chorales), untrained: {export, load} seconds."""
    import tensorflow as tf

    config = task.parse_args(["--model", name, "--export-dir", ""])
    settings = task.data_settings(config)
    folder = task.data_folder(config, settings)  # the one a job on these settings builds
    dataset.build(list(config.data), folder, settings, progress=False)
    spec = data_lib.spec_of(folder)
    vocab = Vocabulary.load(folder / "vocab.json") if spec.representation == "notes" else None
    family = MODELS[name]
    x, _ = family.arrays(folder, "train", spec, config)
    model = family.build(spec, config.hparams, config.seq_len)
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        path = export.export(model, name, spec, config.seq_len, out, vocab=vocab,
                             conditions=conditions.of_inputs(x))
        exported = time.perf_counter() - began
        began = time.perf_counter()
        tf.saved_model.load(str(path))
        return {"export": exported, "load": time.perf_counter() - began}


def in_fresh_process(name: str, autograph: bool) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--export-one", name, "--autograph", str(int(autograph))],
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+",
                        default=["attention_lstm", "lstm", "rnn_nade", "wgan_gp"])
    parser.add_argument("--export-one", help=argparse.SUPPRESS)  # a child: one family's times
    parser.add_argument("--autograph", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_one:
        export.base.AUTOGRAPH = bool(args.autograph)
        print(json.dumps(export_seconds(args.export_one)))
        return

    import numpy as np
    import tensorflow as tf

    ours = trace_seconds(conditions.from_tokens, args.repeats)
    before = trace_seconds(ragged_from_tokens, args.repeats)
    print(f"from_tokens traced: {ours:.2f} s (ragged, before: {before:.2f} s); "
          f"ratio {before / ours:.1f}x")

    # the two compute the same conditions
    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    vocab = Vocabulary.load(folder / "vocab.json")
    x, _ = MODELS["attention_lstm"].arrays(folder, "train", spec,
                                           Config(model="attention_lstm", export_dir=""))
    windows = x[input_name(spec)]  # events [N, T, (token, duration, shift)]
    names = np.asarray(vocab.tokens, object)[windows[:256, :, 0]]
    table = conditions.pitch_table()
    valid = tf.ones(names.shape, tf.bool)
    np.testing.assert_array_equal(
        conditions.from_tokens(names, windows[:256, :, 2], valid, table).numpy(),
        ragged_from_tokens(names, windows[:256, :, 2], valid, table).numpy())

    print("| family (defaults) | export, AutoGraph on (before) | off (now) | ratio "
          "| load, on | off |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        on, off = in_fresh_process(name, True), in_fresh_process(name, False)
        print(f"| {name} | {on['export']:.1f} s | {off['export']:.1f} s | "
              f"{on['export'] / off['export']:.1f}x | {on['load']:.1f} s | {off['load']:.1f} s |",
              flush=True)


if __name__ == "__main__":
    main()
