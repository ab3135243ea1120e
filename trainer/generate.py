"""`python -m trainer.generate`: compose with an exported SavedModel, in this process.

    python -m trainer.generate --model saved_models/attention_lstm --steps 500 --seed 7 \\
        --out out.mid --wav out.wav --png roll.png

Without --primer, the primer is the start of the first Bach chorale that ships with music21.
--steps counts the model's steps: events (notes), frames (pianoroll) or bars (midinet); with
--interpolate (vae), segments. The request runs through `serving.composer.Composer`.
"""

from __future__ import annotations

import argparse
import sys

from preprocessing.piece import InputError
from serving.cli_flags import add_request_flags, check_request_flags, compose
from serving.composer import Composer
from serving.errors import ComposerError
from serving.quiet import quiet_tensorflow


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved_models/NAME or a version folder")
    parser.add_argument("--version", type=int)
    add_request_flags(parser)
    parser.add_argument("--refine", metavar="MODEL", help="then give the notes velocities and "
                        "steady durations with this refine model (saved_models/refine)")
    parser.add_argument("--out", required=True, help="MIDI file to write")
    parser.add_argument("--wav", help="also render a WAV (FluidSynth)")
    parser.add_argument("--png", help="also draw the piano roll")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    try:
        check_request_flags(args)
        composer = Composer(args.model, version=args.version)
        result = compose(composer, args)
        result.write_midi(args.out)
        written = [args.out]
        if args.png:
            written.append(result.write_png(args.png))
        if args.wav:
            written.append(result.write_wav(args.wav))
    except (ComposerError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result.piece)} notes from {composer.name} → {', '.join(map(str, written))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
