"""`python -m serving.client`: compose with a model TF Serving (or `serving.server`) serves.

    python -m serving.client --server 127.0.0.1:8500 --model attention_lstm --steps 500 \\
        --seed 7 --out out.mid [--wav out.wav] [--primer in.mid] [--version N | --label L]
    python -m serving.client --server 127.0.0.1:8500 --model attention_lstm --status
    python -m serving.client --rest http://127.0.0.1:8501 --model attention_lstm --metadata
    python -m serving.client --model attention_lstm --key "A minor" --density 0.4 \\
        --refine refine --out out.mid
    python -m serving.client --model vae --primer a.mid --interpolate b.mid --steps 5 \\
        --out blend.mid
    python -m serving.client --model wgan_gp --form ABCAB --steps 320 --out gan.mid

It composes through `serving.composer.Composer`: it reads the model's `metadata` signature to
learn its representation and inputs, converts the primer, and calls `generate` once
(`interpolate` for --interpolate; then `refine` on a served refine model for --refine).
"""

from __future__ import annotations

import argparse
import json
import sys

from preprocessing.piece import InputError
from serving.cli_flags import add_request_flags, check_request_flags, compose
from serving.composer import Composer
from serving.errors import ComposerError
from serving.quiet import quiet_tensorflow
from serving.transports import GrpcClient, RestClient

ClientError = ComposerError  # the name scripts and tests know a failed request by


def Client(server: str = "127.0.0.1:8500", rest: str | None = None,  # noqa: N802
           timeout: float = 60.0) -> GrpcClient | RestClient:
    """A connection to a server: gRPC at `server` (host:port), or REST at the `rest` URL.

    Its `predict`, `metadata`, `signatures` and `status` take the model's name (and a version
    or label); `Composer(client, model=NAME)` composes with one of its models.
    """
    return RestClient(rest, timeout) if rest else GrpcClient(server, timeout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8500", help="gRPC host:port")
    parser.add_argument("--rest", help="use REST instead: http://HOST:8501")
    parser.add_argument("--model", required=True)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label", default="")
    parser.add_argument("--status", action="store_true", help="print the model's status")
    parser.add_argument("--metadata", action="store_true", help="print metadata and signatures")
    add_request_flags(parser)
    parser.add_argument("--refine", metavar="NAME", help="then give the notes velocities and "
                        "steady durations with this served refine model (e.g. refine)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--out", help="MIDI file to write")
    parser.add_argument("--wav", help="also render a WAV")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    try:
        check_request_flags(args)
        composer = Composer(Client(args.server, args.rest, args.timeout), args.model,
                            args.version, args.label)
        if args.status or args.metadata:
            info = {}
            if args.status:
                info["status"] = composer.status()
            if args.metadata:
                info["metadata"] = composer.metadata()
                info["signatures"] = composer.signatures()
            print(json.dumps(info, indent=1))
            return 0
        if not args.out:
            raise InputError("--out: where to write the MIDI file")
        result = compose(composer, args)
        result.write_midi(args.out)
        if args.wav:
            result.write_wav(args.wav)
    except (ComposerError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(result.piece)} notes → {args.out}{' and ' + args.wav if args.wav else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
