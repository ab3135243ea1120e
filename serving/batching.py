"""TF Serving's request batching for the local server: concurrent calls to one signature of one
model version run as one merged call, with the parameters of a BatchingParameters file.

A request joins the open batch of its model version, signature and input shapes (every
dimension but the first); the batch runs when it holds `max_batch_size` rows, or when its first
request has waited `batch_timeout_micros` and one of the `num_batch_threads` is free (until then
it keeps taking requests). Each model version and signature holds at most `max_enqueued_batches`
batches waiting; past that a request is refused at once with UNAVAILABLE, as TF Serving's batch
scheduler refuses it ("the batch scheduling queue ... is full"): retry shortly. Each request
gets its own rows of the outputs back, with the steps of the time axis that only padded it past
its own num_steps trimmed off, so it reads what it would have read alone. A request of more than
`max_batch_size` rows runs alone (TF Serving would refuse it; this server's --max-batch already
caps a request). `allowed_batch_sizes` is read and ignored: a signature takes any batch size
without retracing, so padding a batch would only add work; so is `pad_variable_length_inputs`:
padding a piano-roll primer would change the music, so primers of other lengths make batches
of their own. A merged call that fails is rerun one request at a time, so a bad request gets
its own error and its neighbours their answers.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Hashable

import numpy as np

from serving.models import SHAPING_INPUTS, STEP_INPUTS, Limits, Servable, ServingError

log = logging.getLogger("serving")
DEFAULT_PARAMETERS = Path(__file__).resolve().parent / "config" / "batching.config"


# --- the BatchingParameters text format ----------------------------------------------------------

def text_proto_class(file_name: str, message: str, fields: list[tuple[str, int, str, str]]):
    """A protobuf message class built from its schema in a private descriptor pool, to parse a
    TF Serving config with `text_format` (tensorflow-serving-api ships neither
    BatchingParameters nor MonitoringConfig).

    Args:
        file_name: a .proto name, unique to this pool.
        message: the message's full name, e.g. "tensorflow.serving.BatchingParameters".
        fields: (name, number, type, message type name or "") per field; type is a
            FieldDescriptorProto type name without TYPE_ ("INT64", "BOOL", "STRING", "MESSAGE"),
            suffixed "[]" for a repeated field; a name "Other.field" is a field of another
            message of the same package.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    package, _, name = message.rpartition(".")
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3",
                                               dependency=[wrappers.name])
    parts: dict[str, descriptor_pb2.DescriptorProto] = {}
    for field, number, kind, type_name in fields:
        owner, _, field = field.rpartition(".")  # "Other.field": a field of another message
        owner = owner or name
        if owner not in parts:
            parts[owner] = proto.message_type.add(name=owner)
        repeated = kind.endswith("[]")
        f = parts[owner].field.add(name=field, number=number,
                                   type=getattr(F, "TYPE_" + kind.rstrip("[]")),
                                   label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if type_name:
            f.type_name = type_name
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(message))


_INT64 = ".google.protobuf.Int64Value"
_BATCHING_FIELDS = [("max_batch_size", 1, "MESSAGE", _INT64),
                    ("batch_timeout_micros", 2, "MESSAGE", _INT64),
                    ("max_enqueued_batches", 3, "MESSAGE", _INT64),
                    ("num_batch_threads", 4, "MESSAGE", _INT64),
                    ("thread_pool_name", 5, "MESSAGE", ".google.protobuf.StringValue"),
                    ("allowed_batch_sizes", 6, "INT64[]", ""),
                    ("pad_variable_length_inputs", 7, "BOOL", "")]


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters that this server uses; defaults as TF Serving's."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()


def read_parameters(path: str | Path) -> BatchingParameters:
    """A BatchingParameters text file (TF Serving's --batching_parameters_file).

    Raises:
        ValueError: not readable, not BatchingParameters, or a value out of range.
    """
    from google.protobuf import text_format

    proto = text_proto_class("serving/local_batching.proto",
                             "tensorflow.serving.BatchingParameters", _BATCHING_FIELDS)()
    try:
        text_format.Parse(Path(path).read_text(), proto)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"{path}: not BatchingParameters ({exc})") from None
    values = {f: getattr(proto, f).value for f in ("max_batch_size", "batch_timeout_micros",
                                                   "max_enqueued_batches", "num_batch_threads")
              if proto.HasField(f)}
    params = BatchingParameters(**values, allowed_batch_sizes=tuple(proto.allowed_batch_sizes))
    for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
        if getattr(params, field) < 1:
            raise ValueError(f"{path}: {field} must be >= 1")
    if params.batch_timeout_micros < 0:
        raise ValueError(f"{path}: batch_timeout_micros must be >= 0")
    return params


# --- the batcher ---------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class _Task:
    inputs: dict
    rows: int
    steps: int | None  # the request's longest num_steps: where its time axis ends
    future: Future
    deadline: float | None = None  # time.monotonic() past which no one waits for the answer
    arrived: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(eq=False)
class _Batch:
    queue: Hashable
    key: Hashable
    call: Callable[[dict], dict]
    trim: frozenset
    opened: float  # time.monotonic() of its first task
    tasks: list = dataclasses.field(default_factory=list)
    rows: int = 0
    row_cost: int = 0  # the largest steps (read + generated) of a row: every row runs them


class Batcher:
    """Merges concurrent calls that `run` is given with the same key, with TF Serving's
    parameters; `num_batch_threads` threads run the batches.

    Args:
        params: the batching parameters.
        on_batch: called after each model call with (queue, rows, requests); a merged call
            that failed and was rerun reports each rerun as a call of its own.
        on_rerun: called with (queue) when a merged call failed and its requests are rerun.
        max_batch_steps: a cap on rows x steps of a merged call, as on one request (every
            row of a merged call runs the longest row's steps); None: no cap.
    """

    def __init__(self, params: BatchingParameters, on_batch=None, on_rerun=None,
                 max_batch_steps: int | None = None):
        self.params, self.max_batch_steps = params, max_batch_steps
        self.on_batch, self.on_rerun = on_batch, on_rerun
        self.timeout = params.batch_timeout_micros / 1e6
        self.lock = threading.Condition()
        self.waiting: list[_Batch] = []  # not yet taken by a thread, oldest first
        self.open: dict[Hashable, _Batch] = {}  # key → its batch still taking requests
        self.enqueued: collections.Counter = collections.Counter()  # queue → batches waiting
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                        for i in range(params.num_batch_threads)]
        for thread in self.threads:
            thread.start()

    def run(self, queue: Hashable, key: Hashable, call: Callable[[dict], dict], inputs: dict,
            rows: int, steps: int | None = None, trim: frozenset = frozenset(),
            cost: int = 0, deadline: float | None = None) -> dict:
        """Runs `call(inputs)` merged with the other requests of `key`, and returns this
        request's part of the outputs.

        Args:
            queue: what the queue's capacity counts (model, version, signature).
            key: requests of equal keys merge; the key must imply `queue` and `call`.
            call: runs merged inputs; returns outputs, each with a leading axis of rows.
            inputs: name → array or tensor, each with `rows` rows.
            rows: the request's rows.
            steps: the request's longest num_steps, or None.
            trim: outputs whose axis 1 is a time axis: the steps past `steps` are cut off
                when they only pad (zeros, "").
            cost: the steps a row of this request reads and generates (`max_batch_steps`).
            deadline: the caller's deadline (`time.monotonic()`): a request still waiting
                when it passes is dropped from its batch, not run.

        Raises:
            ServingError: UNAVAILABLE when the queue is full or the batcher is closing;
                DEADLINE_EXCEEDED when `deadline` passed before the request ran; what `call`
                raised on this request alone.
        """
        task = _Task(inputs, rows, steps, Future(), deadline)
        with self.lock:
            if self.stopping:
                raise ServingError("UNAVAILABLE", "the server is stopping")
            batch = self.open.get(key)
            if batch is None or batch.rows + rows > self.params.max_batch_size or (
                    self.max_batch_steps is not None and (batch.rows + rows) * max(
                        batch.row_cost, cost) > self.max_batch_steps):
                if self.enqueued[queue] >= self.params.max_enqueued_batches:
                    raise ServingError("UNAVAILABLE", f"the batch queue of {_name(queue)} "
                                       f"is full ({self.params.max_enqueued_batches} batches of "
                                       f"up to {self.params.max_batch_size} rows waiting: "
                                       "max_enqueued_batches); try again shortly")
                self.open.pop(key, None)  # a batch without room for this request is full
                batch = _Batch(queue, key, call, trim, time.monotonic())
                self.waiting.append(batch)
                self.enqueued[queue] += 1
                self.open[key] = batch
            batch.tasks.append(task)
            batch.rows += rows
            batch.row_cost = max(batch.row_cost, cost)
            if batch.rows >= self.params.max_batch_size:
                del self.open[key]
            self.lock.notify()
        try:
            return task.future.result(None if deadline is None else
                                      max(0.0, deadline - time.monotonic()) + 1.0)
        except TimeoutError:  # the caller has gone; the batch drops or discards its rows
            raise ServingError("DEADLINE_EXCEEDED", f"the deadline passed in the batch queue "
                               f"of {_name(queue)}") from None

    def depths(self) -> dict[Hashable, int]:
        """Queue → requests waiting in it (not yet running), for the queues that have some."""
        with self.lock:
            depth: collections.Counter = collections.Counter()
            for batch in self.waiting:
                depth[batch.queue] += len(batch.tasks)
            return dict(depth)

    def close(self) -> None:
        """Refuses new requests, runs those waiting, and stops the threads."""
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        for thread in self.threads:
            thread.join()

    def _take(self) -> _Batch | None:
        """The oldest batch that is full or has waited its timeout (under the lock)."""
        now = time.monotonic()
        for i, batch in enumerate(self.waiting):
            full = self.open.get(batch.key) is not batch
            if full or self.stopping or now - batch.opened >= self.timeout:
                del self.waiting[i]
                if not full:
                    del self.open[batch.key]
                self.enqueued[batch.queue] -= 1
                if not self.enqueued[batch.queue]:
                    del self.enqueued[batch.queue]
                return batch
        return None

    def _work(self) -> None:
        while True:
            with self.lock:
                batch = self._take()
                while batch is None:
                    if self.stopping:
                        return
                    due = min((b.opened + self.timeout for b in self.waiting), default=None)
                    self.lock.wait(None if due is None else max(0.0, due - time.monotonic()))
                    batch = self._take()
            try:
                self._process(batch)
            except BaseException as exc:  # a bug: answer every request, keep the thread
                log.exception("batching: %s", _name(batch.queue))
                for task in batch.tasks:
                    if not task.future.done():
                        task.future.set_exception(exc)

    def _process(self, batch: _Batch) -> None:
        now, tasks = time.monotonic(), []
        for task in batch.tasks:  # no one waits for an answer past its deadline: not run
            if task.deadline is not None and now >= task.deadline:
                task.future.set_exception(ServingError(
                    "DEADLINE_EXCEEDED", f"the deadline passed after {now - task.arrived:.3g} s "
                    f"in the batch queue of {_name(batch.queue)}"))
            else:
                tasks.append(task)
        if len(tasks) > 1:
            try:
                merged = {k: _concat([t.inputs[k] for t in tasks]) for k in tasks[0].inputs}
                parts = _split(batch.call(merged), tasks, batch.trim)
            except Exception as exc:  # a bad request among good ones: each on its own
                log.info("batching: a merged call of %d requests to %s failed (%s); running "
                         "them one at a time", len(tasks), _name(batch.queue),
                         " ".join(str(exc).split())[:200])
                if self.on_rerun:
                    self.on_rerun(batch.queue)
            else:
                for task, part in zip(tasks, parts):
                    task.future.set_result(part)
                self._report(batch.queue, sum(t.rows for t in tasks), len(tasks))
                return
        for task in tasks:
            try:
                task.future.set_result(batch.call(task.inputs))
            except Exception as exc:
                task.future.set_exception(exc)
            self._report(batch.queue, task.rows, 1)

    def _report(self, queue, rows: int, requests: int) -> None:
        """`on_batch`, after the answers: a failing metric never fails a request."""
        if self.on_batch:
            try:
                self.on_batch(queue, rows, requests)
            except Exception:
                log.exception("batching: on_batch")


def _name(queue) -> str:
    if isinstance(queue, tuple) and len(queue) == 3:
        return f"model {queue[0]} version {queue[1]} signature {queue[2]}"
    return str(queue)


def _concat(values: list):
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    import tensorflow as tf

    return tf.concat(values, 0)


def _split(outputs: dict, tasks: list[_Task], trim: frozenset) -> list[dict]:
    """Each task's rows of the merged outputs, the time axis of `trim` outputs cut back to the
    task's own steps where the steps past them only pad.

    Raises:
        ValueError: an output without one row per input row (it cannot be split).
    """
    total = sum(t.rows for t in tasks)
    longest = max((t.steps for t in tasks if t.steps is not None), default=None)
    parts, start = [], 0
    for task in tasks:
        part = {}
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != total:
                raise ValueError(f"output {name}: shape {list(value.shape)}, not one row per "
                                 f"input row ({total})")
            mine = value[start:start + task.rows]
            if name in trim and task.steps is not None and task.steps < longest \
                    and mine.ndim >= 2 and mine.shape[1] == longest \
                    and not np.any(mine[:, task.steps:]):  # "" and 0 are false
                mine = mine[:, :task.steps]
            part[name] = mine
        parts.append(part)
        start += task.rows
    return parts


# --- the one way a request reaches a model -------------------------------------------------------

class Predictor:
    """Checks each request against its signature and the server's limits, then runs it: alone,
    or merged with others through `batcher` (None: every request alone). `on_served(model,
    signature, outputs)`, when set, sees every request's outputs once they are computed."""

    def __init__(self, limits: Limits, batcher: Batcher | None = None):
        self.limits, self.batcher = limits, batcher
        self.on_served = None

    def predict(self, model: Servable, signature: str, inputs: dict[str, np.ndarray],
                deadline: float | None = None) -> dict:
        """Output name → array, as `Servable.run`; `deadline` (`time.monotonic()`): the
        caller's, past which a request still in the batch queue is not run.

        Raises:
            ServingError: as `Servable.check` and `Servable.run`; as `Batcher.run`.
        """
        signature = signature or "serving_default"
        outputs = self._run(model, signature, inputs, deadline)
        if self.on_served is not None:
            try:
                self.on_served(model, signature, outputs)
            except Exception:  # a failing metric never fails a request
                log.exception("on_served: %s version %s", model.name, model.version)
        return outputs

    def _run(self, model: Servable, signature: str, inputs: dict[str, np.ndarray],
             deadline: float | None) -> dict:
        fn, tensors = model.check(signature, inputs, self.limits)
        rows = {int(t.shape[0]) if t.shape.rank else -1 for t in tensors.values()}
        if self.batcher is None or len(rows) != 1 or min(rows) < 1:
            return model.run(fn, tensors)  # a scalar, or rows that disagree: the model says
        shapes = tuple(sorted((k, t.dtype.name, tuple(t.shape[1:])) for k, t in tensors.items()))
        shaping = tuple(int(np.max(inputs[k])) for k in SHAPING_INPUTS if k in inputs)
        steps = [int(np.max(inputs[k])) for k in STEP_INPUTS if k in inputs]
        read = max((int(t.shape[1]) for t in tensors.values() if t.shape.rank > 1), default=0)
        return self.batcher.run((model.name, model.version, signature), (id(fn), shapes, shaping),
                                lambda merged: model.run(fn, merged), tensors, rows.pop(),
                                max(steps) if steps else None, model.time_outputs(signature),
                                cost=read + max(steps, default=0), deadline=deadline)
