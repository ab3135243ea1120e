"""A thin client for TF Serving (or `serving.server`): MIDI primer in, MIDI out.

    python -m serving.client --server 127.0.0.1:8500 --model attention_lstm --steps 500 \\
        --seed 7 --out out.mid [--wav out.wav] [--primer in.mid] [--version N | --label L]
    python -m serving.client --server 127.0.0.1:8500 --model attention_lstm --status
    python -m serving.client --rest http://127.0.0.1:8501 --model attention_lstm --metadata
    python -m serving.client --model attention_lstm --key "A minor" --density 0.4 \\
        --refine refine --out out.mid
    python -m serving.client --model vae --primer a.mid --interpolate b.mid --steps 5 \\
        --out blend.mid
    python -m serving.client --model wgan_gp --form ABCAB --steps 320 --out gan.mid

It reads the model's `metadata` signature to learn its representation and inputs, converts the
primer with `preprocessing`, and calls `generate` once (`interpolate` for --interpolate; then
`refine` on a refine model for --refine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

from preprocessing import audio, requests
from preprocessing.piece import InputError, Piece
from preprocessing.writers import write_midi

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class ClientError(Exception):
    """A request that failed, with a one-line reason."""


class Client:
    """Predict / metadata / status over gRPC (`server`, host:port) or REST (`rest`, a URL)."""

    def __init__(self, server: str = "127.0.0.1:8500", rest: str | None = None,
                 timeout: float = 60.0):
        self.server, self.rest, self.timeout = server, rest.rstrip("/") if rest else None, timeout
        if self.rest is None:
            import grpc
            from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

            self._grpc = grpc
            self.channel = grpc.insecure_channel(server, options=[
                ("grpc.max_receive_message_length", 64 * 2**20)])
            self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
            self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    # --- transport ---

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            if code == self._grpc.StatusCode.UNAVAILABLE:
                raise ClientError(f"server {self.server} is not reachable") from None
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ClientError(f"no answer from {self.server} in {self.timeout:g} s") from None
            raise ClientError(f"{code.name}: {exc.details()}") from None

    def _http(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.rest + path, data=data, method="POST" if data
                                         else "GET", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise ClientError(f"HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ClientError(f"server {self.rest} is not reachable ({exc})") from None

    @staticmethod
    def _spec(spec, model: str, version: int | None, label: str):
        spec.name = model
        if version is not None:
            spec.version.value = version
        elif label:
            spec.version_label = label

    def _path(self, model: str, version: int | None, label: str) -> str:
        suffix = f"/versions/{version}" if version is not None else \
            f"/labels/{label}" if label else ""
        return f"/v1/models/{model}{suffix}"

    # --- API ---

    def predict(self, model: str, signature: str, inputs: dict[str, np.ndarray],
                version: int | None = None, label: str = "") -> dict[str, np.ndarray]:
        """Runs a signature; outputs as numpy arrays."""
        if self.rest:
            body = {"signature_name": signature,
                    "inputs": {k: _listed(v) for k, v in inputs.items()}}
            outputs = self._http(self._path(model, version, label) + ":predict", body)["outputs"]
            return {k: np.asarray(v) for k, v in outputs.items()}
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        response = self._call(self.predictions.Predict, request)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def metadata(self, model: str, version: int | None = None, label: str = "") -> dict:
        """The model's `metadata` signature: representation, grid, window, ..."""
        return requests.metadata_from_outputs(
            self.predict(model, "metadata", requests.METADATA_REQUEST, version, label))

    def signatures(self, model: str, version: int | None = None, label: str = "") -> dict:
        """GetModelMetadata: each signature's input and output names."""
        if self.rest:
            meta = self._http(self._path(model, version, label) + "/metadata")
            defs = meta["metadata"]["signature_def"]["signature_def"]
            return {k: {"inputs": sorted(v.get("inputs", {})),
                        "outputs": sorted(v.get("outputs", {}))} for k, v in defs.items()}
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.predictions.GetModelMetadata, request)
        defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(defs)
        return {k: {"inputs": sorted(v.inputs), "outputs": sorted(v.outputs)}
                for k, v in defs.signature_def.items()}

    def status(self, model: str, version: int | None = None, label: str = "") -> list[dict]:
        """GetModelStatus: [{"version": N, "state": "AVAILABLE"}, ...]."""
        if self.rest:
            statuses = self._http(self._path(model, version, label))["model_version_status"]
            return [{"version": int(s["version"]), "state": s["state"]} for s in statuses]
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        response = self._call(self.models.GetModelStatus, request)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": s.version, "state": states.Name(s.state)}
                for s in response.model_version_status]

    def generate(self, model: str, primer: Piece, steps: int, temperature: float = 1.0,
                 top_k: int = 0, seed: int = 0, threshold: float = 0.0,
                 version: int | None = None, label: str = "",
                 primer_steps: int | None = None, key: str = "",
                 density: float | None = None, form: str = "") -> tuple[Piece, float]:
        """Composes a continuation of `primer`; returns (primer + continuation, primer end).
        `key` and `density` set a conditional model's condition (default: the primer's);
        `form` (wgan_gp) the segments' noise letters."""
        meta = self.metadata(model, version, label)
        steps_in = requests.primer_steps(primer, meta, primer_steps)
        inputs = requests.generate_inputs(steps_in, meta, steps, temperature, top_k, seed,
                                          threshold, key, density, form)
        outputs = self.predict(model, "generate", inputs, version, label)
        return requests.to_piece(steps_in, outputs, meta, primer.qpm)

    def interpolate(self, model: str, a: Piece, b: Piece, points: int,
                    temperature: float = 1.0, threshold: float = 0.0, seed: int = 0,
                    version: int | None = None, label: str = "",
                    primer_steps: int | None = None) -> tuple[Piece, float]:
        """A `vae`'s blend from a's opening to b's in `points` segments; returns (the blend,
        0.0)."""
        meta = self.metadata(model, version, label)
        a_in = requests.primer_steps(a, meta, primer_steps)
        b_in = requests.primer_steps(b, meta, primer_steps)
        inputs = requests.interpolate_inputs(a_in, b_in, meta, points, temperature, threshold,
                                             seed)
        outputs = self.predict(model, "interpolate", inputs, version, label)
        return requests.to_piece(a_in[:0], outputs, meta, a.qpm)

    def refine(self, model: str, piece: Piece, version: int | None = None,
               label: str = "") -> Piece:
        """The piece with velocities and steady durations from a served refine model."""
        meta = self.metadata(model, version, label)
        inputs, rows = requests.refine_inputs(piece, meta)
        return requests.refined(piece, rows, self.predict(model, "refine", inputs, version,
                                                          label), meta)


def _listed(value: np.ndarray):
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s),
                            otypes=[object])(value).tolist()
    return value.tolist()


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
    requests.add_request_flags(parser)
    parser.add_argument("--refine", metavar="NAME", help="then give the notes velocities and "
                        "steady durations with this served refine model (e.g. refine)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--out", help="MIDI file to write")
    parser.add_argument("--wav", help="also render a WAV")
    args = parser.parse_args(argv)
    try:
        requests.check_request_flags(args)
        client = Client(args.server, args.rest, args.timeout)
        if args.status or args.metadata:
            info = {}
            if args.status:
                info["status"] = client.status(args.model, args.version, args.label)
            if args.metadata:
                info["metadata"] = client.metadata(args.model, args.version, args.label)
                info["signatures"] = client.signatures(args.model, args.version, args.label)
            print(json.dumps(info, indent=1))
            return 0
        if not args.out:
            raise InputError("--out: where to write the MIDI file")
        primer = requests.read_primer(args.primer)
        if args.interpolate:
            piece, _ = client.interpolate(args.model, primer,
                                          requests.read_primer(args.interpolate), args.steps,
                                          args.temperature, args.threshold, args.seed,
                                          args.version, args.label, args.primer_steps)
        else:
            piece, _ = client.generate(args.model, primer, args.steps, args.temperature,
                                       args.top_k, args.seed, args.threshold, args.version,
                                       args.label, args.primer_steps, args.key, args.density,
                                       args.form)
        if args.refine:
            piece = client.refine(args.refine, piece)
        write_midi(piece, args.out)
        if args.wav:
            audio.render_wav(args.out, args.wav)
    except (ClientError, InputError, audio.AudioUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(piece)} notes → {args.out}{' and ' + args.wav if args.wav else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
