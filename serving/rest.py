"""TF Serving's REST API (/v1/models/...) over http.server, with a read timeout and a cap on
concurrent connections, and its Prometheus metrics (/monitoring/prometheus/metrics)."""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from serving.batching import Predictor
from serving.metrics import Metrics
from serving.models import Limits, ModelRegistry, ServingError
from serving.tensors import json_inputs, loads

log = logging.getLogger("serving")
HTTP_CODES = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "RESOURCE_EXHAUSTED": 503,
              "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


class RestServer(ThreadingHTTPServer):
    """One thread per connection, at most `max_connections` of them: a connection beyond that
    gets an immediate 503 and is closed, so idle or slow clients cannot pile up threads."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, max_connections: int):
        self.max_connections = max_connections
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _refuse(self, sock) -> None:
        body = json.dumps({"error": f"this server holds at most {self.max_connections} "
                                    "connections (--max-connections); try again shortly"}).encode()
        head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
        try:
            sock.settimeout(0.5)  # this runs on the accepting thread: never wait on a client
            sock.sendall(head.encode() + body)
            sock.setblocking(False)
            sock.recv(65536)  # what already arrived: closing with unread data resets the peer
        except OSError:
            pass
        self.shutdown_request(sock)

    def handle_error(self, request, client_address):
        # a client that went away mid-answer: not the server's error, no traceback on stderr
        log.debug("rest: connection from %s failed", client_address, exc_info=True)


class JsonHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with a read timeout (`read_timeout`: a silent client is dropped, not waited on),
    debug logging, and every answer sent by `_reply`, http.server's own errors (bad request
    line, headers, method) as one-line JSON too."""

    protocol_version = "HTTP/1.1"
    read_timeout = 30.0
    log_name = "rest"
    headers_sent: dict[str, str] = {}  # on every answer

    def setup(self):
        self.timeout = self.read_timeout  # StreamRequestHandler applies it to the socket
        super().setup()

    def log_message(self, fmt, *args):
        log.debug(f"{self.log_name}: " + fmt, *args)

    def send_error(self, code, message=None, explain=None):
        self.close_connection = True
        self._json(code, {"error": message or HTTPStatus(code).phrase})

    def _json(self, code: int, body) -> None:
        self._reply(code, json.dumps(body).encode(), "application/json")

    def _reply(self, code: int, data: bytes, kind: str, headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for key, value in {**self.headers_sent, **(headers or {})}.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _digits(text: str, most: int = 18) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= most


def make_handler(registry: ModelRegistry, limits: Limits, timeout: float,
                 predictor: Predictor | None = None, stats: Metrics | None = None,
                 metrics_path: str | None = None):
    """The request handler class of the REST server.

    Args:
        registry: the models served.
        limits: the caps on one request.
        timeout: seconds a connection may stay silent (between requests or within one).
        predictor: runs each :predict (default: each request alone).
        stats: the metrics :predict requests count in.
        metrics_path: where GET serves `stats` in Prometheus' text format (None: nowhere).
    """
    from google.protobuf import json_format

    predictor = predictor or Predictor(limits)
    stats = stats or Metrics(registry, predictor)

    class Handler(JsonHandler):
        read_timeout = timeout

        def _route(self):
            """/v1/models/NAME[/versions/N|/labels/L][/metadata|:predict] → parts."""
            path = self.path.split("?")[0]
            action = ""
            if path.endswith(":predict"):
                path, action = path[:-len(":predict")], "predict"
            parts = path.strip("/").split("/")
            if len(parts) < 3 or parts[:2] != ["v1", "models"]:
                raise ServingError("NOT_FOUND", f"no such path {self.path[:200]}; try "
                                   "/v1/models/NAME")
            name, rest, version, label = parts[2], parts[3:], None, ""
            if rest and rest[-1] == "metadata":
                action, rest = "metadata", rest[:-1]
            if len(rest) == 2 and rest[0] == "versions" and _digits(rest[1]):
                version = int(rest[1])
            elif len(rest) == 2 and rest[0] == "labels":
                label = rest[1]
            elif rest:
                raise ServingError("NOT_FOUND", f"no such path {self.path[:200]}")
            return name, version, label, action

        def do_GET(self):
            if self.headers.get("Content-Length", "0") != "0" or \
                    self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # a body is left unread: the stream is lost
            self._guard(self._get)

        def do_POST(self):
            self._guard(self._post)

        def _guard(self, method):
            try:
                method()
            except ServingError as exc:
                self._json(HTTP_CODES[exc.code], {"error": exc.message})
            except TimeoutError:
                self.close_connection = True
                self._json(408, {"error": f"no request body within {timeout:g} s "
                                          "(--rest-timeout)"})
            except (BrokenPipeError, ConnectionResetError):  # the client went away: no one
                self.close_connection = True  # to answer, nothing to log
            except Exception as exc:  # never drop a connection without an answer
                log.exception("rest: %s", self.path[:200])
                self._json(500, {"error": " ".join(f"{type(exc).__name__}: {exc}".split())})

        def _get(self):
            if metrics_path and self.path.split("?")[0] == metrics_path:
                self._reply(200, *stats.exposition())
                return
            name, version, label, action = self._route()
            if action == "metadata":
                model = registry.get(name, version, label)
                sigs = {k: json_format.MessageToDict(v) for k, v in model.signature_defs.items()}
                self._json(200, {"model_spec": {"name": name, "version": str(model.version)},
                                 "metadata": {"signature_def": {"signature_def": sigs}}})
                return
            if action == "predict":
                raise ServingError("INVALID_ARGUMENT", f"GET {self.path[:200]}: predict is a "
                                   "POST")
            models = [registry.get(name, version, label)] \
                if version is not None or label else registry.loaded(name)
            self._json(200, {"model_version_status": [
                {"version": str(m.version), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}} for m in models]})

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True  # the body's end is unknown
                raise ServingError("INVALID_ARGUMENT", "send the body with a Content-Length, "
                                   "not a Transfer-Encoding")
            length = self.headers.get("Content-Length") or "0"
            if not _digits(length, 30):
                self.close_connection = True  # the body's end is unknown
                raise ServingError("INVALID_ARGUMENT", f"bad Content-Length {length[:40]!r}")
            if int(length) > limits.max_request_bytes:
                self.close_connection = True  # its body is left unread
                raise _TooLarge(f"request body over {limits.max_request_bytes} bytes "
                                "(--max-request-bytes)")
            return self.rfile.read(int(length))

        def _post(self):
            try:
                body = self._body()
            except _TooLarge as exc:
                self._json(413, {"error": str(exc)})
                return
            name, version, label, action = self._route()
            if action != "predict":
                raise ServingError("NOT_FOUND", f"POST {self.path[:200]}: use ...:predict")
            with stats.track("rest") as tracker:
                request = loads(body)
                if not isinstance(request, dict):
                    raise ServingError("INVALID_ARGUMENT", 'the body is a JSON object: '
                                       '{"signature_name": ..., "inputs": {...}}')
                model = registry.get(name, version, label)
                signature = request.get("signature_name") or "serving_default"
                if not isinstance(signature, str):
                    raise ServingError("INVALID_ARGUMENT", "signature_name: a string")
                tracker.known(model, signature)
                fn = model.signatures.get(signature)
                if fn is None:
                    raise ServingError("NOT_FOUND", f"model {model.name} has no signature "
                                       f"{signature[:100]!r}")
                inputs = json_inputs(fn.structured_input_signature[1], request)
                outputs = predictor.predict(model, signature, inputs)
            self._json(200, {"outputs": {k: _jsonable(v) for k, v in outputs.items()}})

    return Handler


class _TooLarge(Exception):
    pass


def _jsonable(value: np.ndarray):
    if value.dtype.kind in "OS":
        return np.vectorize(lambda b: b.decode(errors="replace") if isinstance(b, bytes) else b,
                            otypes=[object])(value).tolist()
    return value.tolist()
