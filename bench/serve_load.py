"""Serving under load: `generate` requests of 128 events to the local server over loopback gRPC,
from 1 client and from 16 concurrent clients, with batching on (the default) and off; then one
500-event request over gRPC beside the same call in-process.

Prints, per setting, events/s, p50 / p99 latency and errors, and the ratio of events/s at 16
clients to 1 client (goal with batching: >= 6x, p99 <= 2 s at 16 clients, 0 errors); beside it
the same ratio in process, one call of 16 rows against one of 1 row: the most batching can give
on this machine under its present load. Then the server's memory (RSS) and the gRPC /
in-process latency ratio (goal <= 1.2). The ratios are the robust figures on a shared machine:
both sides of each run seconds apart under the same load.

    python bench/serve_load.py [--clients 16] [--steps 128] [--requests 12] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from preprocessing import dataset  # noqa: E402
from preprocessing.notes import Vocabulary  # noqa: E402
from serving import contract  # noqa: E402
from serving.client import Client, ClientError  # noqa: E402
from trainer import data as data_lib  # noqa: E402
from trainer import export  # noqa: E402
from trainer.models import MODELS  # noqa: E402

MODEL = "attention_lstm"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(config: Path, max_steps: int, *flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-config",
                             str(config), "--port", "0", "--rest-port", "-1", "--max-steps",
                             str(max_steps), *flags], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("{"):
            return proc, json.loads(line)["grpc"]
    raise RuntimeError("the server did not start")


def load(address: str, inputs, clients: int, requests: int, steps: int) -> dict:
    """`clients` threads, each with its own connection, sending `requests` requests in turn."""
    latencies, errors = [], []
    start = threading.Barrier(clients + 1)

    def worker(k):
        mine = Client(address, timeout=120)
        mine.status(MODEL)  # connected before the clock starts
        start.wait()
        for r in range(requests):
            began = time.perf_counter()
            try:
                mine.predict(MODEL, "generate", inputs(steps, k * 1000 + r))
                latencies.append(time.perf_counter() - began)
            except ClientError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    lat = np.sort(np.asarray(latencies or [np.nan])) * 1000
    return {"clients": clients, "events_per_s": len(latencies) * steps / wall,
            "p50": np.percentile(lat, 50), "p99": np.percentile(lat, 99),
            "errors": len(errors), "first_error": errors[0] if errors else ""}


def run_setting(config: Path, flags: tuple, inputs, args) -> tuple[list[dict], dict]:
    proc, address = start_server(config, args.long_steps, *flags)
    try:
        warm = Client(address, timeout=120)
        warm.predict(MODEL, "generate", inputs(8, 0))
        load(address, inputs, args.clients, 1, args.steps)  # every batch size once
        memory = {"before": rss_mib(proc.pid)}
        rows = [load(address, inputs, 1, args.single_requests, args.steps),
                load(address, inputs, args.clients, args.requests, args.steps)]
        memory["after"] = rss_mib(proc.pid)
        long_inputs = inputs(args.long_steps, 7)
        warm.predict(MODEL, "generate", long_inputs)  # warm the shape
        began = time.perf_counter()
        memory["served"] = warm.predict(MODEL, "generate", long_inputs)["tokens"]
        memory["over_grpc"] = time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=12, help="per client, at --clients")
    parser.add_argument("--single-requests", type=int, default=30, help="from 1 client")
    parser.add_argument("--steps", type=int, default=128, help="events per load request")
    parser.add_argument("--long-steps", type=int, default=500)
    parser.add_argument("--no-baseline", action="store_true", help="skip --no-batching")
    args = parser.parse_args()

    import tensorflow as tf

    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    family = MODELS[MODEL]
    model = family.build(spec, dict(family.defaults), 64)  # the default size; speed needs no
    vocab = Vocabulary.load(folder / "vocab.json")         # training
    primer = contract.read_primer(None)
    load_before = os.getloadavg()

    settings = {"on": ()} if args.no_baseline else {"on": (), "off": ("--no-batching",)}
    results = {}
    with tempfile.TemporaryDirectory() as out:
        path = export.export(model, MODEL, spec, 64, out, vocab=vocab)
        meta = contract.metadata_from_outputs(
            tf.saved_model.load(str(path)).signatures["metadata"](
                request=tf.constant(contract.METADATA_REQUEST["request"])))
        steps_in = contract.primer_steps(primer, meta)

        def inputs(steps, seed):
            return contract.generate_inputs(steps_in, meta, steps, seed=seed)

        for name, flags in settings.items():
            results[name] = run_setting(Path(out) / "models.config", flags, inputs, args)
        long_inputs = inputs(args.long_steps, 7)
        generate = tf.saved_model.load(str(path)).signatures["generate"]

        def timed(batch_inputs, repeat=1):
            tensors = {k: tf.constant(v) for k, v in batch_inputs.items()}
            out = generate(**tensors)  # warm-up
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                out = generate(**tensors)
                times.append(time.perf_counter() - began)
            return min(times), out

        in_process, local = timed(long_inputs)
        local = local["tokens"].numpy()
        one_row = inputs(args.steps, 1)
        ceiling = timed(one_row, 3)[0] / timed(
            {k: np.concatenate([v] * args.clients) for k, v in one_row.items()}, 3)[0] \
            * args.clients
    load_after = os.getloadavg()

    print(f"{MODEL} (default size), generate requests of {args.steps} events, gRPC over "
          f"loopback, clients and server on the same {os.cpu_count()} cores; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{'batching':>8} {'clients':>7} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} errors")
    for name, (rows, _) in results.items():
        for row in rows:
            print(f"{name:>8} {row['clients']:>7} {row['events_per_s']:>9.0f} {row['p50']:>7.0f} "
                  f"{row['p99']:>7.0f} {row['errors']}"
                  + (f" (first: {row['first_error'][:120]})" if row["errors"] else ""))
    for name, (rows, _) in results.items():
        one, many = rows
        line = (f"batching {name}: {many['events_per_s'] / one['events_per_s']:.1f}x events/s "
                f"at {args.clients} clients vs 1")
        if name == "on":
            line += (f" (goal >= 6x); p99 at {args.clients} clients {many['p99'] / 1000:.2f} s "
                     f"(goal <= 2 s); errors {one['errors'] + many['errors']} (goal 0)")
        print(line)
    print(f"in process: one call of {args.clients} rows gives {ceiling:.1f}x the events/s of one "
          "call of 1 row (what batching can give here, now)")
    for name, (_, memory) in results.items():
        assert np.array_equal(memory["served"], local), "gRPC and in-process outputs differ"
        print(f"batching {name}: server memory (RSS) {memory['before']:.0f} MiB before the "
              f"load, {memory['after']:.0f} MiB after; one {args.long_steps}-event request: "
              f"gRPC {memory['over_grpc']:.2f} s, in-process {in_process:.2f} s, ratio "
              f"{memory['over_grpc'] / in_process:.2f}x (goal <= 1.2)")


if __name__ == "__main__":
    main()
