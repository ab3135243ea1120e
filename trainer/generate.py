"""`python -m trainer.generate`: compose with an exported SavedModel, in this process.

    python -m trainer.generate --model saved_models/attention_lstm --steps 500 --seed 7 \\
        --out out.mid --wav out.wav --png roll.png

Without --primer, the primer is the start of the first Bach chorale that ships with music21.
--steps counts the model's steps: events (notes), frames (pianoroll) or bars (midinet); with
--interpolate (vae), segments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from preprocessing import audio, plot, requests
from preprocessing.piece import InputError
from preprocessing.writers import write_midi

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def resolve(model: str | Path, version: int | None = None) -> Path:
    """A model folder (newest version, or `version`) or a version folder → the version folder."""
    path = Path(model)
    if (path / "saved_model.pb").exists():
        return path
    found = sorted((int(p.name) for p in path.glob("*") if p.name.isdigit()), reverse=True)
    if version is not None:
        if version not in found:
            raise InputError(f"{path}: no version {version} (have: {found or 'none'})")
        return path / str(version)
    if not found:
        raise InputError(f"{path}: no exported SavedModel (expected {path}/<version>/)")
    return path / str(found[0])


def read_metadata(loaded) -> dict:
    """The metadata of a loaded SavedModel, as plain values."""
    return read_metadata_of(loaded.signatures)


def read_metadata_of(signatures) -> dict:
    return requests.metadata_from_outputs(call(signatures["metadata"],
                                               requests.METADATA_REQUEST))


def call(signature, inputs: dict):
    """Runs a loaded signature on NumPy inputs; a rejected request is an InputError with the
    signature's own one-line message."""
    import tensorflow as tf

    try:
        return signature(**{k: tf.constant(v) for k, v in inputs.items()})
    except tf.errors.InvalidArgumentError as exc:
        raise InputError(requests.error_message(exc.message)) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved_models/NAME or a version folder")
    parser.add_argument("--version", type=int)
    requests.add_request_flags(parser)
    parser.add_argument("--refine", metavar="MODEL", help="then give the notes velocities and "
                        "steady durations with this refine model (saved_models/refine)")
    parser.add_argument("--out", required=True, help="MIDI file to write")
    parser.add_argument("--wav", help="also render a WAV (FluidSynth)")
    parser.add_argument("--png", help="also draw the piano roll")
    args = parser.parse_args(argv)
    try:
        import tensorflow as tf

        requests.check_request_flags(args)
        folder = resolve(args.model, args.version)
        loaded = tf.saved_model.load(str(folder))
        meta = read_metadata(loaded)
        piece = requests.read_primer(args.primer)
        primer = requests.primer_steps(piece, meta, args.primer_steps)
        if args.interpolate:
            other = requests.primer_steps(requests.read_primer(args.interpolate), meta,
                                          args.primer_steps)
            signature = "interpolate"
            inputs = requests.interpolate_inputs(primer, other, meta, args.steps,
                                                 args.temperature, args.threshold, args.seed)
            primer = primer[:0]  # the output is the blend alone
        else:
            signature = "generate"
            inputs = requests.generate_inputs(primer, meta, args.steps, args.temperature,
                                              args.top_k, args.seed, args.threshold, args.key,
                                              args.density, args.form)
        outputs = call(loaded.signatures[signature], inputs)
        result, primer_end = requests.to_piece(primer, outputs, meta, piece.qpm)
        if args.refine:
            refiner = tf.saved_model.load(str(resolve(args.refine))).signatures
            refine_meta = read_metadata_of(refiner)
            inputs, rows = requests.refine_inputs(result, refine_meta)
            result = requests.refined(result, rows, call(refiner["refine"], inputs), refine_meta)
        write_midi(result, args.out)
        written = [args.out]
        if args.png:
            written.append(plot.save_roll_png(result, args.png, meta["steps_per_quarter"],
                                              primer_end, f"{meta['model']} ({folder})"))
        if args.wav:
            written.append(audio.render_wav(args.out, args.wav))
    except (InputError, audio.AudioUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result)} notes from {folder} → {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
