"""The request flags of `trainer.generate` and `serving.client`, and the request they describe."""

from __future__ import annotations

import os

from preprocessing.piece import InputError
from serving.composer import Composer, Composition


def add_request_flags(parser) -> None:
    """The flags of a `generate` request, shared by `trainer.generate` and `serving.client`."""
    parser.add_argument("--primer", help="MIDI / MusicXML / ABC to continue (default: the "
                        "start of the first Bach chorale)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ logs")
    parser.add_argument("--primer-steps", type=int, help="primer length (default: the window)")
    parser.add_argument("--steps", type=int, default=500,
                        help="events (notes), frames (pianoroll) or bars (midinet)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="piano roll: keys on above this probability (0: sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--key", default="", help="conditional models: compose in this key "
                        "(C, F#, Bb, Am, 'C# minor'; default: the primer's)")
    parser.add_argument("--density", type=float, help="conditional models: note events per "
                        "grid step, 0-1 (default: the primer's)")
    parser.add_argument("--form", default="", help="wgan_gp: a letter per segment; equal "
                        "letters repeat a segment's noise (e.g. ABCAB; default: all new)")
    parser.add_argument("--interpolate", metavar="FILE", help="vae: blend the primer into "
                        "FILE's opening over --steps segments (the `interpolate` signature)")


def check_request_flags(args) -> None:
    """Flags of `add_request_flags` that cannot go together.

    Raises:
        InputError: --interpolate with --key, --density or --form; an output path that is a
            folder.
    """
    if args.interpolate and (args.key or args.density is not None or args.form):
        raise InputError("--interpolate: blends two primers; it takes no --key, --density or "
                         "--form")
    for flag in ("out", "wav", "png"):
        path = getattr(args, flag, None)
        if path and os.path.isdir(path):
            raise InputError(f"--{flag}: {path} is a folder; give a file name, e.g. "
                             f"{os.path.join(path, 'out.' + ('mid' if flag == 'out' else flag))}")


def compose(composer: Composer, args) -> Composition:
    """The request the flags describe: `generate` (or `interpolate`), then `refine` with
    --refine's model if given.

    Raises:
        ComposerError: as the Composer's methods.
    """
    if args.interpolate:
        result = composer.interpolate(args.primer, args.interpolate, args.steps,
                                      temperature=args.temperature, threshold=args.threshold,
                                      seed=args.seed, primer_steps=args.primer_steps)
    else:
        result = composer.generate(args.primer, args.steps, temperature=args.temperature,
                                   top_k=args.top_k, threshold=args.threshold, seed=args.seed,
                                   key=args.key, density=args.density, form=args.form,
                                   primer_steps=args.primer_steps)
    return composer.refine(result, refiner=args.refine) if args.refine else result
