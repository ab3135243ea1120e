"""`python -m serving.server`: TF Serving's API for machines without Docker.

    python -m serving.server --model-config saved_models/models.config --port 8500 --rest-port 8501

gRPC: PredictionService.Predict / GetModelMetadata and ModelService.GetModelStatus, with the
servicers of tensorflow-serving-api. REST: GET /v1/models/NAME[/versions/N|/labels/L][/metadata]
and POST ...:predict. The same client works against this server and TF Serving. It binds
127.0.0.1 unless told otherwise, caps request size and num_steps, serves each model's newest
version, loads new versions as they appear, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np

from serving.models import ModelRegistry, ServingError

log = logging.getLogger("serving")
GRPC_CODES = {"NOT_FOUND": grpc.StatusCode.NOT_FOUND,
              "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT}
HTTP_CODES = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400}


def _servicers(registry: ModelRegistry, max_steps: int):
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def servable(spec):
        version = spec.version.value if spec.HasField("version") else None
        return registry.get(spec.name, version, spec.version_label)

    def guarded(method):
        def call(self, request, context):
            try:
                return method(self, request, context)
            except ServingError as exc:
                context.abort(GRPC_CODES[exc.code], exc.message)
        return call

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @guarded
        def Predict(self, request, context):
            model = servable(request.model_spec)
            inputs = {}
            for key, proto in request.inputs.items():
                try:
                    inputs[key] = tf.make_ndarray(proto)
                except Exception as exc:  # any tensor proto numpy cannot hold
                    raise ServingError("INVALID_ARGUMENT", f"input {key}: unsupported tensor "
                                       f"({type(exc).__name__}: {exc})") from None
            signature = request.model_spec.signature_name or "serving_default"
            outputs = model.predict(signature, inputs, max_steps)
            wanted = set(request.output_filter) or set(outputs)
            response = predict_pb2.PredictResponse()
            response.model_spec.name, response.model_spec.signature_name = model.name, signature
            response.model_spec.version.value = model.version
            for key in wanted & set(outputs):
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response

        @guarded
        def GetModelMetadata(self, request, context):
            model = servable(request.model_spec)
            fields = set(request.metadata_field) or {"signature_def"}
            if fields != {"signature_def"}:
                raise ServingError("INVALID_ARGUMENT", "metadata_field: only signature_def")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = model.name
            response.model_spec.version.value = model.version
            defs = get_model_metadata_pb2.SignatureDefMap()
            for name, sig in model.signature_defs.items():
                defs.signature_def[name].CopyFrom(sig)
            response.metadata["signature_def"].Pack(defs)
            return response

    class Status(model_service_pb2_grpc.ModelServiceServicer):
        @guarded
        def GetModelStatus(self, request, context):
            spec = request.model_spec
            if spec.HasField("version") or spec.version_label:
                models = [servable(spec)]
            else:
                models = registry.loaded(spec.name)
            response = get_model_status_pb2.GetModelStatusResponse()
            for model in models:
                status = response.model_version_status.add()
                status.version = model.version
                status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            return response

    return Prediction(), Status(), (prediction_service_pb2_grpc, model_service_pb2_grpc)


def start_grpc(registry: ModelRegistry, host: str, port: int, max_steps: int,
               max_message_bytes: int, workers: int = 8) -> grpc.Server:
    prediction, status, (prediction_grpc, model_grpc) = _servicers(registry, max_steps)
    server = grpc.server(futures.ThreadPoolExecutor(workers), options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 64 * 2**20)])
    prediction_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_grpc.add_ModelServiceServicer_to_server(status, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot bind gRPC on {host}:{port}")
    server.start()
    server.port = bound
    return server


def _rest_handler(registry: ModelRegistry, max_steps: int, max_body: int):
    from google.protobuf import json_format

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("rest: " + fmt, *args)

        def _send(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            """/v1/models/NAME[/versions/N|/labels/L][/metadata|:predict] → parts."""
            path = self.path.split("?")[0]
            action = ""
            if path.endswith(":predict"):
                path, action = path[:-len(":predict")], "predict"
            parts = path.strip("/").split("/")
            if len(parts) < 3 or parts[:2] != ["v1", "models"]:
                raise ServingError("NOT_FOUND", f"no such path {self.path}; try /v1/models/NAME")
            name, rest, version, label = parts[2], parts[3:], None, ""
            if rest and rest[-1] == "metadata":
                action, rest = "metadata", rest[:-1]
            if len(rest) == 2 and rest[0] == "versions" and rest[1].isdigit():
                version = int(rest[1])
            elif len(rest) == 2 and rest[0] == "labels":
                label = rest[1]
            elif rest:
                raise ServingError("NOT_FOUND", f"no such path {self.path}")
            return name, version, label, action

        def do_GET(self):
            self._guard(self._get)

        def do_POST(self):
            self._guard(self._post)

        def _guard(self, method):
            try:
                method()
            except ServingError as exc:
                self._send(HTTP_CODES[exc.code], {"error": exc.message})
            except Exception as exc:  # never drop a connection without an answer
                log.exception("rest: %s", self.path)
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        def _get(self):
            name, version, label, action = self._route()
            if action == "metadata":
                model = registry.get(name, version, label)
                sigs = {k: json_format.MessageToDict(v) for k, v in model.signature_defs.items()}
                self._send(200, {"model_spec": {"name": name, "version": str(model.version)},
                                 "metadata": {"signature_def": {"signature_def": sigs}}})
                return
            if action == "predict":
                raise ServingError("INVALID_ARGUMENT", f"GET {self.path}: predict is a POST")
            models = [registry.get(name, version, label)] \
                if version is not None or label else registry.loaded(name)
            self._send(200, {"model_version_status": [
                {"version": str(m.version), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}} for m in models]})

        def _post(self):
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True  # the body's end is unknown
                raise ServingError("INVALID_ARGUMENT", f"bad Content-Length {length!r}")
            if int(length) > max_body:
                self.close_connection = True  # its body is left unread
                self._send(413, {"error": f"request body over {max_body} bytes"})
                return
            length = int(length)
            body = self.rfile.read(length)
            name, version, label, action = self._route()
            if action != "predict":
                raise ServingError("NOT_FOUND", f"POST {self.path}: use ...:predict")
            try:
                request = json.loads(body or b"{}")
            except ValueError as exc:
                raise ServingError("INVALID_ARGUMENT", f"body is not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise ServingError("INVALID_ARGUMENT", 'the body is a JSON object: '
                                   '{"signature_name": ..., "inputs": {...}}')
            model = registry.get(name, version, label)
            signature = request.get("signature_name") or "serving_default"
            outputs = model.predict(signature, _json_inputs(model, signature, request), max_steps)
            self._send(200, {"outputs": {k: _jsonable(v) for k, v in outputs.items()}})

    return Handler


def _json_inputs(model, signature: str, request: dict) -> dict[str, np.ndarray]:
    """REST inputs (columnar `inputs`, or row `instances`) as arrays of the signature's dtypes."""
    fn = model.signatures.get(signature)
    if fn is None:
        raise ServingError("NOT_FOUND", f"model {model.name} has no signature {signature!r}")
    specs = fn.structured_input_signature[1]
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ServingError("INVALID_ARGUMENT", "instances: a list of objects")
        columns = {k: [r.get(k) for r in rows] for k in (rows[0] if rows else {})}
    else:
        columns = request.get("inputs")
        if not isinstance(columns, dict):
            raise ServingError("INVALID_ARGUMENT", 'expected {"inputs": {NAME: value, ...}}')
    out = {}
    for key, value in columns.items():
        if key not in specs:  # Servable.predict names it
            out[key] = np.asarray(value, dtype=object)
            continue
        dtype = object if specs[key].dtype.name == "string" else specs[key].dtype.as_numpy_dtype
        try:
            raw = np.asarray(value)
            if dtype is object and raw.size and raw.dtype.kind != "U":
                raise ValueError("expected strings")
            if np.dtype(dtype).kind in "iu" and raw.dtype.kind not in "iu":
                raise ValueError(f"expected whole numbers, got {raw.dtype}")
            out[key] = raw.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ServingError("INVALID_ARGUMENT", f"input {key}: {exc}") from None
    return out


def _jsonable(value: np.ndarray):
    if value.dtype.kind in "OS":
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b,
                            otypes=[object])(value).tolist()
    return value.tolist()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-config", default="saved_models/models.config")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: any; -1: off)")
    parser.add_argument("--max-steps", type=int, default=2000, help="cap on num_steps")
    parser.add_argument("--max-request-bytes", type=int, default=4 * 2**20)
    parser.add_argument("--poll-seconds", type=float, default=2.0,
                        help="how often to look for new versions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        registry = ModelRegistry(args.model_config)
        server = start_grpc(registry, args.host, args.port, args.max_steps,
                            args.max_request_bytes)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    httpd = None
    if args.rest_port >= 0:
        httpd = ThreadingHTTPServer((args.host, args.rest_port),
                                    _rest_handler(registry, args.max_steps,
                                                  args.max_request_bytes))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # the line tests and scripts wait for: where to reach this server
    print(json.dumps({"grpc": f"{args.host}:{server.port}",
                      "rest": f"http://{args.host}:{httpd.server_port}" if httpd else None,
                      "models": sorted(registry.models)}), flush=True)
    while not stop.wait(args.poll_seconds):
        registry.refresh()
    log.info("stopping")
    if httpd is not None:
        httpd.shutdown()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
