"""Prometheus metrics of the local server, at TF Serving's monitoring path on the REST port:
requests by model, version, signature and status, their latency, the batches they ran in, the
batch queues' depth, the versions loaded, and the drift of what each version composes from its
training data. Each server has its own registry."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from pathlib import Path

from serving.batching import text_proto_class
from serving.models import ServingError

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config" / "monitoring.config"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DRIFT_PIECES = 64  # the served pieces per model version whose drift is measured
DRIFT_SIGNATURE = "generate"
log = logging.getLogger("serving")
UNKNOWN = "-"  # the label of a model or signature the server does not have: names from
               # requests would let any client add series without bound


def read_monitoring_path(path: str | Path) -> str | None:
    """The Prometheus path of a MonitoringConfig text file (TF Serving's
    --monitoring_config_file); None when it does not enable Prometheus.

    Raises:
        ValueError: not readable, or not a MonitoringConfig.
    """
    from google.protobuf import text_format

    config = text_proto_class("serving/local_monitoring.proto",
                              "tensorflow.serving.MonitoringConfig", [
                                  ("PrometheusConfig.enable", 1, "BOOL", ""),
                                  ("PrometheusConfig.path", 2, "STRING", ""),
                                  ("prometheus_config", 1, "MESSAGE",
                                   ".tensorflow.serving.PrometheusConfig")])()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"{path}: not a MonitoringConfig ({exc})") from None
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    return prometheus.path or "/monitoring/prometheus/metrics"


class Tracker:
    """What one request is known to be so far: its model, version and signature are labels once
    the server has them."""

    model, version, signature = UNKNOWN, "", UNKNOWN

    def known(self, model, signature: str) -> None:
        self.model, self.version = model.name, str(model.version)
        signature = signature or "serving_default"
        self.signature = signature if signature in model.signatures else UNKNOWN


class Metrics:
    """The server's metrics, in a registry of its own.

    Args:
        models: the ModelRegistry (its loaded versions are read at each scrape).
        predictor: the Predictor whose outputs the drift gauge measures; its batcher's calls
            are counted and its queue depths read at each scrape.
        drift_pieces: how many of the last pieces each version served the drift is measured on
            (0: no drift gauge).
    """

    def __init__(self, models, predictor, drift_pieces: int = DRIFT_PIECES):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        batcher = predictor.batcher

        self.registry = CollectorRegistry()
        model = ["model", "version", "signature"]
        self.requests = Counter("serving_requests", "Predict requests by model, version, "
                                "signature, API (grpc, rest) and status (OK or the error code)",
                                [*model, "api", "status"], registry=self.registry)
        self.latency = Histogram("serving_request_latency_seconds", "Predict latency, from the "
                                 "request read to the answer ready", [*model, "api"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("serving_batch_size", "rows per model call", model,
                                    buckets=SIZE_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("serving_batch_requests", "requests per model call "
                                        "(more than 1: a merged call)", model,
                                        buckets=SIZE_BUCKETS, registry=self.registry)
        self.reruns = Counter("serving_batch_reruns", "merged calls that failed and were rerun "
                              "one request at a time", model, registry=self.registry)
        self.registry.register(_Live(models, batcher))
        if drift_pieces > 0:
            self.drift = Drift(models, drift_pieces)
            self.registry.register(self.drift)
            predictor.on_served = self.drift.record
        if batcher is not None:
            batcher.on_batch, batcher.on_rerun = self.on_batch, self.on_rerun

    @contextlib.contextmanager
    def track(self, api: str):
        """Counts and times the request of the `with` block; the block names its model and
        signature with `tracker.known(...)` as soon as it has them."""
        tracker, began, status = Tracker(), time.perf_counter(), "OK"
        try:
            yield tracker
        except ServingError as exc:
            status = exc.code
            raise
        except Exception:
            status = "INTERNAL"
            raise
        finally:
            labels = tracker.model, tracker.version, tracker.signature
            self.requests.labels(*labels, api, status).inc()
            self.latency.labels(*labels, api).observe(time.perf_counter() - began)

    def on_batch(self, queue, rows: int, requests: int) -> None:
        labels = _labels(queue)
        self.batch_rows.labels(*labels).observe(rows)
        self.batch_requests.labels(*labels).observe(requests)

    def on_rerun(self, queue) -> None:
        self.reruns.labels(*_labels(queue)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """(the text format of every metric, its content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _labels(queue) -> tuple[str, str, str]:
    name, version, signature = queue
    return name, str(version), signature


class _Live:
    """The gauges read at each scrape: versions loaded, requests waiting in batch queues."""

    def __init__(self, models, batcher):
        self.models, self.batcher = models, batcher

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        loaded = GaugeMetricFamily("serving_model_version_loaded", "1 for each model version "
                                   "served", labels=["model", "version"])
        with self.models.lock:
            versions = {name: sorted(v) for name, v in self.models.models.items()}
        for name, numbers in sorted(versions.items()):
            for number in numbers:
                loaded.add_metric([name, str(number)], 1)
        yield loaded
        depth = GaugeMetricFamily("serving_batch_queue_depth", "requests waiting in a batch "
                                  "queue (not yet running)", labels=["model", "version",
                                                                      "signature"])
        if self.batcher is not None:  # every signature of every version served, waiting or not
            waiting = self.batcher.depths()
            with self.models.lock:
                queues = sorted((name, number, signature)
                                for name, numbers in self.models.models.items()
                                for number, model in numbers.items()
                                for signature in model.signatures)
            for queue in queues:
                depth.add_metric(list(_labels(queue)), waiting.get(queue, 0))
        yield depth


class Drift:
    """How far what each model version composes has drifted from its training data: the
    Wasserstein distance (`evaluation.metrics.distribution_drift`) between the note pitches
    (semitones), and between the note durations (quarter notes), of the last `keep` pieces its
    `generate` signature served (primers left out) and of its training pieces, which the export
    keeps (`serving.versions.INFO`). Versions exported without them have no drift series.

    Each served piece is kept as the counts of its pitches and durations (a few hundred numbers
    at most, whatever the request's size), made on the request's thread once its answer is
    computed; a version no longer loaded is forgotten at the next scrape.
    """

    def __init__(self, models, keep: int = DRIFT_PIECES):
        self.models, self.keep = models, keep
        self.lock = threading.Lock()
        # (model, version) → (the Servable's id, training distributions, deque of each served
        # piece's distributions)
        self.served: dict[tuple[str, int], tuple] = {}
        self.failed: set = set()  # versions whose outputs could not be read: said once

    def record(self, model, signature: str, outputs: dict) -> None:
        """Keeps the notes of a `generate` answer's rows (a Predictor's `on_served`)."""
        from evaluation import metrics as mm
        from serving.contract import composed_piece

        reference = model.info.get("notes")
        if signature != DRIFT_SIGNATURE or not isinstance(reference, dict) or not outputs:
            return
        meta, key = model.metadata(), (model.name, model.version)
        rows = len(next(iter(outputs.values())))
        try:
            counted = [mm.note_distributions([composed_piece(outputs, meta, row)])
                       for row in range(max(0, rows - self.keep), rows)]
        except Exception as exc:  # the answer is sent anyway
            if (id(model), key) not in self.failed:
                self.failed.add((id(model), key))
                log.warning("drift: %s version %s: its generate outputs could not be read as "
                            "notes (%s)", model.name, model.version, exc)
            return
        with self.lock:
            kept = self.served.get(key)
            if kept is None or kept[0] != id(model):  # new, or another export of that number
                kept = self.served[key] = (id(model), reference,
                                           collections.deque(maxlen=self.keep))
            kept[2].extend(counted)

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        from evaluation import metrics as mm

        distance = GaugeMetricFamily(
            "serving_drift_wasserstein", "Wasserstein distance between the note pitches "
            "(semitones) or durations (quarter notes) of the last pieces a model version "
            "composed and those of its training data", labels=["model", "version", "feature"])
        pieces = GaugeMetricFamily("serving_drift_pieces", "served pieces the drift is "
                                   "measured on", labels=["model", "version"])
        silent = GaugeMetricFamily("serving_drift_silent_pieces", "of those, pieces without a "
                                   "note", labels=["model", "version"])
        with self.models.lock:
            loaded = {(name, number) for name, numbers in self.models.models.items()
                      for number in numbers}
        with self.lock:
            for key in set(self.served) - loaded:
                del self.served[key]
            kept = {key: (reference, list(rows))
                    for key, (_, reference, rows) in self.served.items()}
        for (name, version), (reference, rows) in sorted(kept.items()):
            served = {feature: {part: [x for row in rows for x in row[feature][part]]
                                for part in ("values", "counts")}
                      for feature in mm.DRIFT_FEATURES}
            for feature, value in mm.distribution_drift(reference, served).items():
                if value is not None:
                    distance.add_metric([name, str(version), feature], value)
            labels = [name, str(version)]
            pieces.add_metric(labels, len(rows))
            silent.add_metric(labels, sum(not row["pitch"]["counts"] for row in rows))
        yield distance
        yield pieces
        yield silent
