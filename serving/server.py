"""`python -m serving.server`: TF Serving's API for machines without Docker.

    python -m serving.server --model-config saved_models/models.config --port 8500 --rest-port 8501

gRPC: PredictionService.Predict / GetModelMetadata and ModelService.GetModelStatus, with the
servicers of tensorflow-serving-api. REST: GET /v1/models/NAME[/versions/N|/labels/L][/metadata]
and POST ...:predict. The same client works against this server and TF Serving. It binds
127.0.0.1 unless told otherwise, caps each request (size, rows, steps) and the connections
it holds, serves each model's newest version, loads new versions as they appear (retrying one
that fails, as TF Serving does), and stops cleanly on SIGTERM.

Batching is on by default (TF Serving's is off unless --enable_batching): concurrent requests to
one signature of one model version run as one merged call, with the parameters of
--batching-parameters-file (serving/config/batching.config); --no-batching runs each request
alone. Prometheus metrics are served at the path of --monitoring-config-file
(/monitoring/prometheus/metrics) on the REST port, with the drift of what each model version
composes from the training notes its export keeps (serving_drift_wasserstein).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

from serving import batching, metrics
from serving.batching import Batcher, Predictor
from serving.metrics import Metrics
from serving.models import Limits, ModelRegistry, ServingError
from serving.quiet import quiet_tensorflow
from serving.rest import RestServer, make_handler
from serving.tensors import tensors_from_protos

log = logging.getLogger("serving")
GRPC_CODES = {"NOT_FOUND": grpc.StatusCode.NOT_FOUND,
              "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
              "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
              "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
              "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED}


def _servicers(registry: ModelRegistry, limits: Limits, predictor: Predictor,
               stats: Metrics):
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
            except Exception as exc:  # a bug: INTERNAL with one line, not UNKNOWN
                log.exception("grpc: %s", method.__name__)
                context.abort(grpc.StatusCode.INTERNAL,
                              " ".join(f"{type(exc).__name__}: {exc}".split())[:300])
        return call

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        @guarded
        def Predict(self, request, context):
            with stats.track("grpc") as tracker:
                model = servable(request.model_spec)
                signature = request.model_spec.signature_name or "serving_default"
                tracker.known(model, signature)
                inputs = tensors_from_protos(request.inputs, limits.max_request_bytes)
                left = context.time_remaining()  # None: the client set no deadline
                outputs = predictor.predict(model, signature, inputs,
                                            None if left is None else time.monotonic() + left)
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


def start_grpc(registry: ModelRegistry, host: str, port: int, limits: Limits,
               predictor: Predictor | None = None, stats: Metrics | None = None,
               workers: int = 8, max_concurrent_rpcs: int = 32) -> grpc.Server:
    """Starts the gRPC server: `workers` threads run RPCs; past `max_concurrent_rpcs` running
    or queued, an RPC is answered RESOURCE_EXHAUSTED at once. Requests run through
    `predictor` (default: each alone) and count in `stats`."""
    predictor = predictor or Predictor(limits)
    stats = stats or Metrics(registry, predictor)
    prediction, status, (prediction_grpc, model_grpc) = _servicers(registry, limits, predictor,
                                                                   stats)
    server = grpc.server(futures.ThreadPoolExecutor(workers), options=[
        ("grpc.max_receive_message_length", limits.max_request_bytes),
        ("grpc.max_send_message_length", 64 * 2**20)],
        maximum_concurrent_rpcs=max_concurrent_rpcs)
    prediction_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_grpc.add_ModelServiceServicer_to_server(status, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot bind gRPC on {host}:{port}")
    server.start()
    server.port = bound
    return server


def _positive(kind, zero: bool = False):
    def parse(text: str):
        value = kind(text)
        if not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"{text}: must be {'>=' if zero else '>'} 0")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=_Help)
    count, seconds = _positive(int), _positive(float)
    parser.add_argument("--model-config", default="saved_models/models.config")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free)")
    parser.add_argument("--rest-port", type=int, default=8501, help="REST port (0: any; -1: off)")
    parser.add_argument("--max-steps", type=count, default=2000,
                        help="cap on num_steps and num_bars")
    parser.add_argument("--max-request-bytes", type=count, default=4 * 2**20,
                        help="cap on a gRPC message, a REST body, and the tensors a request "
                        "declares (a string counts its length + 8 bytes)")
    parser.add_argument("--max-batch", type=count, default=64, help="cap on rows per request")
    parser.add_argument("--max-batch-steps", type=count, default=32768,
                        help="cap on rows x steps per request (32768: 16 rows of 2000 steps or "
                        "64 of 512); a row's steps are those it reads (its longest input "
                        "sequence, e.g. the primer) plus those it generates (num_steps)")
    parser.add_argument("--max-concurrent-rpcs", type=count, default=32,
                        help="gRPC calls running or queued (with --no-batching 8 run at a "
                        "time); past it a call gets RESOURCE_EXHAUSTED at once")
    parser.add_argument("--max-connections", type=count, default=64,
                        help="open REST connections (a thread each); past it a new one gets "
                        "503 at once and is closed")
    parser.add_argument("--rest-timeout", type=seconds, default=30.0,
                        help="seconds a REST connection may stay silent (idle, or mid-request) "
                        "before it is closed")
    parser.add_argument("--poll-seconds", type=seconds, default=2.0,
                        help="how often to look for new versions")
    parser.add_argument("--enable-batching", dest="batching", action="store_true",
                        default=True, help="merge concurrent requests into batches (the "
                        "default; TF Serving's flag)")
    parser.add_argument("--no-batching", dest="batching", action="store_false",
                        help="run each request alone")
    parser.add_argument("--batching-parameters-file", default=str(batching.DEFAULT_PARAMETERS),
                        help="TF Serving BatchingParameters (text format)")
    parser.add_argument("--monitoring-config-file", default=str(metrics.DEFAULT_CONFIG),
                        help="TF Serving MonitoringConfig (text format): where the REST port "
                        "serves Prometheus metrics ('': nowhere)")
    parser.add_argument("--drift-pieces", type=_positive(int, zero=True),
                        default=metrics.DRIFT_PIECES, help="the drift gauge compares the last N "
                        "pieces each model version composed with its training data (0: off)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ logs")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    limits = Limits(args.max_steps, args.max_batch, args.max_batch_steps,
                    args.max_request_bytes)
    batcher = None
    try:
        params = batching.read_parameters(args.batching_parameters_file) \
            if args.batching else None
        metrics_path = metrics.read_monitoring_path(args.monitoring_config_file) \
            if args.monitoring_config_file else None
        registry = ModelRegistry(args.model_config, args.poll_seconds)
        batcher = Batcher(params, max_batch_steps=limits.max_batch_steps) \
            if params is not None else None
        predictor = Predictor(limits, batcher)
        stats = Metrics(registry, predictor, args.drift_pieces if metrics_path else 0)
        # batching: an RPC mostly waits for its batch, so each admitted one gets a thread
        server = start_grpc(registry, args.host, args.port, limits, predictor, stats,
                            workers=args.max_concurrent_rpcs if batcher else 8,
                            max_concurrent_rpcs=args.max_concurrent_rpcs)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if batcher is not None:
            batcher.close()
        return 2
    httpd = None
    if args.rest_port >= 0:
        httpd = RestServer((args.host, args.rest_port),
                           make_handler(registry, limits, args.rest_timeout, predictor, stats,
                                        metrics_path),
                           args.max_connections)
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
    if batcher is not None:
        batcher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
