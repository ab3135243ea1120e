"""`python -m evaluation`: how good is an exported model's music, in numbers.

    python -m evaluation --model saved_models/attention_lstm \\
        --data corpus:bach --data-split test --train-data corpus:bach --train-split train \\
        --samples 20 --steps 256 --seed 1 --out eval/attention_lstm

Writes OUT/report.json, OUT/report.md and PNG plots: teacher-forced likelihood on the held-out
pieces (encoded with the model's own settings, read from its `metadata`), objective features of
generated pieces against the held-out ones (mgeval's overlap and KL), degeneracy, copying from
the training pieces, and drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from evaluation import metrics as mm
from preprocessing import bars, notes, pianoroll
from preprocessing.dataset import Settings, cache_root, read_cached, split_of
from preprocessing.piece import InputError, Piece
from preprocessing.readers import ReadOptions, expand_inputs
from serving import contract
from serving.composer import Composer
from serving.errors import ComposerError
from serving.quiet import quiet_tensorflow

SPLITS = ("all", "train", "validation", "test")


def load_pieces(inputs: list[str], split: str, limit: int | None = None) -> list[Piece]:
    """Readable pieces of `inputs` in `split` (by the same content-based split as training)."""
    pieces = []
    for path in _progress(expand_inputs(inputs), f"reading {' '.join(inputs)}", "file"):
        try:
            found = read_cached(path, ReadOptions(), cache_root())
        except InputError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        pieces.extend(p for p in found if split == "all" or split_of(p.digest, Settings()) == split)
        if limit and len(pieces) >= limit:
            break
    if not pieces:
        raise InputError(f"{' '.join(inputs)}: no readable piece in split {split!r}")
    return pieces[:limit] if limit else pieces


def _progress(items, what: str, unit: str):
    """`items` with a progress bar on a terminal (stderr), as they are consumed."""
    from tqdm import tqdm

    return tqdm(items, desc=what, unit=unit, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


def onset_tokens(piece: Piece, steps_per_quarter: int = 4) -> list[str]:
    """The piece as one token per onset on the grid: the pitches starting there (a chord)."""
    onset = np.rint(piece.start * steps_per_quarter).astype(int)
    tokens = []
    for step in np.unique(onset):
        tokens.append(".".join(map(str, sorted(set(piece.pitch[onset == step].tolist())))))
    return tokens


def quarters(pieces: list[Piece]) -> float:
    """The pieces' total length in quarter notes (each from 0 to its last note's end)."""
    return float(sum(p.end for p in pieces if len(p)))


def likelihood(composer: Composer, pieces: list[Piece]) -> dict:
    """Teacher-forced NLL (nats) on `pieces`: per event for notes models, per frame (sum over
    keys) plus frame precision / recall / F1 for piano-roll models; {} for midinet. Both also
    per quarter note (the NLL over the pieces' total length), so that notes and piano-roll
    models compare on the same pieces."""
    import tensorflow as tf

    signatures = composer.signatures()
    if "log_likelihood" not in signatures:
        return {}
    meta = composer.metadata()
    rep, window = meta["representation"], meta["window"]

    def call(**inputs):
        return composer.call("log_likelihood", inputs)

    if rep == "notes":
        totals = {k: 0.0 for k in ("nll", "token_nll", "duration_nll", "shift_nll", "counted",
                                   "oov")}
        for piece in _progress(pieces, "scoring held-out pieces", "piece"):
            events = contract.primer_steps(piece, meta, length=10**9)
            if len(events) < 2:
                continue
            out = call(events=np.asarray([events], object))
            for key in totals:
                totals[key] += float(tf.reduce_sum(out[key]))
        n = max(totals["counted"], 1.0)
        return {"nll_per_event": totals["nll"] / n, "perplexity": float(np.exp(totals["nll"] / n)),
                "nll_per_quarter": totals["nll"] / max(quarters(pieces), 1e-9),
                **{f"{f}_nll": totals[f"{f}_nll"] / n for f in ("token", "duration", "shift")},
                "events": int(totals["counted"]),
                "oov_share": totals["oov"] / max(totals["counted"] + totals["oov"], 1.0)}
    nll, hits, predicted, actual, frames = 0.0, 0.0, 0.0, 0.0, 0
    for piece in _progress(pieces, "scoring held-out pieces", "piece"):
        roll = contract.primer_steps(piece, meta, length=10**9)
        if "encoder" in signatures["log_likelihood"]["inputs"]:  # a window given the one before
            chunks = [roll[k:k + window] for k in range(0, len(roll), window)]
            pairs = list(zip(chunks[:-1], chunks[1:]))
            outs = [(call(encoder=a[None], target=b[None]), b) for a, b in pairs]
        elif len(roll) > 1:  # nll has a value per predicted frame: all but the first, or
            out = call(frames=roll[None])  # all of them for the vae
            outs = [(out, roll[len(roll) - out["nll"].shape[1]:])]
        else:
            outs = []
        for out, target in outs:
            on = out["probs"][0] > 0.5
            nll += float(tf.reduce_sum(out["nll"]))
            frames += len(target)
            hits += float((on & (target > 0.5)).sum())
            predicted, actual = predicted + on.sum(), actual + (target > 0.5).sum()
    precision, recall = hits / max(predicted, 1), hits / max(actual, 1)
    return {"nll_per_frame": nll / max(frames, 1), "frames": frames,
            "nll_per_quarter": nll / max(quarters(pieces), 1e-9),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def frame_f1(drawn: np.ndarray, target: np.ndarray) -> float:
    """Frame-level F1 of drawn keys against the target's (both [T, keys], on above 0.5)."""
    on, real = drawn > 0.5, target > 0.5
    hits = float((on & real).sum())
    return 2 * hits / max(float(on.sum() + real.sum()), 1.0)


def interpolation_ends(composer: Composer, pieces: list[Piece], pairs: int, points: int,
                       seed: int, temperature: float = 1.0) -> dict:
    """For models with `interpolate` (the vae): blends between held-out openings (piece i to
    piece i + 1), drawn at `temperature`; F1 of the first segment against a's encoded segment
    and of the last against b's. {} for other models."""
    if "interpolate" not in composer.signatures() or len(pieces) < 2:
        return {}
    f1s = []
    for i in _progress(range(pairs), "interpolating between held-out pieces", "pair"):
        a, b = pieces[i % len(pieces)], pieces[(i + 1) % len(pieces)]
        result = composer.interpolate(a, b, points, seed=seed + i, temperature=temperature)
        frames = np.asarray(result.outputs["frames"])[0]
        segment = len(frames) // points
        for drawn, primer in ((frames[:segment], result.inputs["a"][0]),
                              (frames[-segment:], result.inputs["b"][0])):
            target = primer[-segment:]
            f1s.append(frame_f1(drawn[-len(target):], target))
    return {"end_f1": float(np.mean(f1s)), "pairs": pairs, "points": points}


def generate_samples(composer: Composer, primers: list[Piece], count: int, steps: int,
                     seed: int, temperature: float = 1.0) -> list[Piece]:
    """`count` continuations (primer excluded), primed from the held-out pieces in turn."""
    out = []
    for i in _progress(range(count), "composing samples", "sample"):
        result = composer.generate(primers[i % len(primers)], steps, seed=seed + i,
                                   temperature=temperature, accompany=False)
        piece, primer_end = result.piece, result.primer_end
        keep = piece.start >= primer_end
        out.append(Piece(f"sample_{i}", "", piece.pitch[keep], piece.start[keep] - primer_end,
                         piece.duration[keep], piece.velocity[keep],
                         np.arange(0, max(piece.end - primer_end, 4.0), 4.0), piece.qpm))
    return out


def as_heard(piece: Piece, meta: dict) -> Piece:
    """A piece as the model's representation holds it (its grid, its keys, its longest note):
    what a perfect model could write. Features compare samples with these, so that a model on
    a coarse grid (one step per quarter note merges passing notes into chords) is not marked
    down for its grid. A melody model (`bars`) hears the piece's top voice on its sixteenth
    grid, so that its melodies are compared with melodies, not with four-voice pieces."""
    rep, spq = meta["representation"], meta["steps_per_quarter"]
    if rep not in ("notes", "pianoroll", "bars") or not len(piece):
        return piece
    if rep == "bars":
        heard = bars.bars_to_piece(bars.piece_to_bars(piece)["melody"], qpm=piece.qpm)
        return dataclasses.replace(heard, name=piece.name)
    steps = contract.primer_steps(piece, meta, length=10**9)
    if rep == "notes":
        heard = notes.events_to_piece([notes.parse_event_string(s) for s in steps], spq,
                                      piece.qpm, piece.name)
    else:
        heard = pianoroll.roll_to_piece(pianoroll.from_frames(steps, meta["encoding"]), spq,
                                        piece.qpm)
    return dataclasses.replace(heard, name=piece.name, bar_starts=piece.bar_starts)


def evaluate(composer: Composer, heldout: list[Piece], train: list[Piece], samples: int,
             steps: int, seed: int, temperature: float = 1.0) -> dict:
    meta = composer.metadata()
    if "generate" not in composer.signatures():
        raise InputError(f"{composer.name}: {meta['model']} does not compose (no generate "
                         "signature); bench/refine.py measures refine models")
    spq = meta["steps_per_quarter"]
    generated = generate_samples(composer, heldout, samples, steps, seed, temperature)
    tokens = [onset_tokens(p, spq) for p in generated]
    training = [onset_tokens(p, spq) for p in train]
    heard = [as_heard(p, meta) for p in heldout]
    comparison = mm.compare_sets(generated, heard)
    density = float(np.mean([mm.note_density(p) for p in heard]))
    motion = [[m for p in pieces if (m := mm.voice_motion(p, spq)) is not None]
              for pieces in (generated, heard)]
    return {
        "model": composer.name, "metadata": meta, "temperature": temperature,
        "heldout_pieces": len(heldout), "train_pieces": len(train),
        "likelihood": likelihood(composer, heldout),
        "features": comparison,
        "degeneracy": {
            "most_common_share": float(np.mean([mm.most_common_share(t) for t in tokens])),
            "silent_step_share": float(np.mean([mm.silent_step_share(p, spq)
                                                for p in generated])),
            "silent_samples": sum(not len(p) for p in generated),
            # notes per beat of the samples against the held-out pieces' (as heard)
            "note_density_ratio": float(np.mean([mm.note_density(p) for p in generated]))
            / max(density, 1e-9),
            "longest_repeat": int(max(mm.longest_repeat(t) for t in tokens)),
            # how far the outer voices move per step, against the held-out pieces': about 3
            # where keys are drawn with no voice carried on from one step to the next
            "voice_motion": float(np.mean(motion[0])) if motion[0] else None,
            "voice_motion_ratio": float(np.mean(motion[0]) / np.mean(motion[1]))
            if motion[0] and motion[1] else None},
        "copying": {
            "longest_copied_run": int(max(mm.longest_copied_run(t, training) for t in tokens)),
            "ngram8_overlap": float(np.mean([mm.ngram_overlap(t, training, 8) for t in tokens]))},
        "drift": mm.drift(train, generated),
        "interpolation": interpolation_ends(composer, heldout, samples, 5, seed, temperature),
        "samples": generated,
    }


def markdown(report: dict) -> str:
    lines = [f"# Evaluation of {report['model']}", "",
             f"{report['heldout_pieces']} held-out pieces, {report['train_pieces']} training "
             f"pieces, {len(report['samples'])} generated samples.", "", "| metric | value |",
             "|---|---|"]
    for section in ("likelihood", "degeneracy", "copying", "drift", "interpolation"):
        for key, value in report[section].items():
            lines.append(f"| {section}: {key} | {value:.4g} |" if isinstance(value, float)
                         else f"| {section}: {key} | {value} |")
    lines.append(f"| features: overlap_mean | {report['features']['overlap_mean']:.4g} |")
    lines += ["", "| feature | overlap | KL | samples: mean (sd) | reference: mean (sd) |",
              "|---|---|---|---|---|"]

    def spread(values) -> str:
        return f"{np.mean(values):.3g} ({np.std(values):.2g})" if values else ""

    for name, value in report["features"].items():
        if isinstance(value, dict) and "overlap" in value:
            lines.append(f"| {name} | {value['overlap']:.3f} | {value['kl']:.3f} | "
                         f"{spread(value.get('generated'))} | {spread(value.get('reference'))} |")
    return "\n".join(lines) + "\n"


def plots(report: dict, heldout: list[Piece], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from preprocessing.plot import save_roll_png

    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, (label, pieces) in zip(axes, (("held-out", heldout),
                                          ("generated", report["samples"]))):
        ax.bar(range(12), np.mean([mm.pitch_class_histogram(p) for p in pieces], axis=0))
        ax.set_title(f"pitch classes, {label}")
        ax.set_xticks(range(12), ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"])
    fig.tight_layout()
    fig.savefig(out / "pitch_classes.png")
    plt.close(fig)
    written.append(out / "pitch_classes.png")
    if report["samples"]:
        written.append(save_roll_png(report["samples"][0], out / "sample_0.png",
                                     report["metadata"]["steps_per_quarter"]))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved_models/NAME or a version folder")
    parser.add_argument("--version", type=int)
    parser.add_argument("--data", nargs="+", required=True, help="held-out pieces")
    parser.add_argument("--data-split", choices=SPLITS, default="all")
    parser.add_argument("--train-data", nargs="+", required=True, help="the training pieces")
    parser.add_argument("--train-split", choices=SPLITS, default="all")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="the samples' (and a vae's blends') sampling temperature")
    parser.add_argument("--limit", type=int, help="at most this many held-out pieces")
    parser.add_argument("--out", required=True)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ logs")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    try:
        heldout = load_pieces(args.data, args.data_split, args.limit)  # cheap checks first
        train = load_pieces(args.train_data, args.train_split)
        composer = Composer(args.model, version=args.version)
        report = evaluate(composer, heldout, train, args.samples, args.steps, args.seed,
                          args.temperature)
    except (ComposerError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = plots(report, heldout, out)
    samples = report.pop("samples")
    report["generated_notes"] = [len(p) for p in samples]
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_plain))
    (out / "report.md").write_text(markdown({**report, "samples": samples}))
    print(f"{out / 'report.json'}, {out / 'report.md'}, {', '.join(map(str, written))}")
    return 0


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


if __name__ == "__main__":
    sys.exit(main())
