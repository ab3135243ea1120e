"""Serving under load: N concurrent gRPC clients sending `generate` to the local server on
loopback; then one 500-note request over gRPC beside the same call in-process.

Prints p50 / p99 latency, requests/s, errors (must be 0), the server's memory (RSS) before and
after, and the gRPC / in-process latency ratio (goal <= 1.2).

    python bench/serve_load.py [--clients 16] [--requests 100] [--steps 32]
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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(config: Path, max_steps: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "serving.server", "--model-config",
                             str(config), "--port", "0", "--rest-port", "-1", "--max-steps",
                             str(max_steps)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("{"):
            return proc, json.loads(line)["grpc"]
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--steps", type=int, default=32, help="events per load request")
    parser.add_argument("--long-steps", type=int, default=500)
    args = parser.parse_args()

    import tensorflow as tf

    folder = dataset.cache_root() / "bench-bach-notes"
    dataset.build(["corpus:bach"], folder, progress=False)
    spec = data_lib.spec_of(folder)
    family = MODELS["attention_lstm"]
    model = family.build(spec, dict(family.defaults), 64)  # the default size; speed needs no
    vocab = Vocabulary.load(folder / "vocab.json")         # training
    primer = contract.read_primer(None)

    with tempfile.TemporaryDirectory() as out:
        path = export.export(model, "attention_lstm", spec, 64, out, vocab=vocab)
        proc, address = start_server(Path(out) / "models.config", args.long_steps)
        try:
            client = Client(address, timeout=120)
            meta = client.metadata("attention_lstm")
            steps_in = contract.primer_steps(primer, meta)

            def inputs(steps, seed):
                return contract.generate_inputs(steps_in, meta, steps, seed=seed)

            client.predict("attention_lstm", "generate", inputs(8, 0))  # warm-up
            memory_before = rss_mib(proc.pid)
            latencies, errors = [], []

            def worker(k):
                mine = Client(address, timeout=120)
                for r in range(args.requests):
                    began = time.perf_counter()
                    try:
                        mine.predict("attention_lstm", "generate", inputs(args.steps, k * 1000 + r))
                        latencies.append(time.perf_counter() - began)
                    except ClientError as exc:
                        errors.append(str(exc))

            began = time.perf_counter()
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
            memory_after = rss_mib(proc.pid)

            long_inputs = inputs(args.long_steps, 7)
            client.predict("attention_lstm", "generate", long_inputs)  # warm the shape
            began = time.perf_counter()
            served = client.predict("attention_lstm", "generate", long_inputs)["tokens"]
            over_grpc = time.perf_counter() - began
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        generate = tf.saved_model.load(str(path)).signatures["generate"]
        local_inputs = {k: tf.constant(v) for k, v in long_inputs.items()}
        generate(**local_inputs)
        began = time.perf_counter()
        local = generate(**local_inputs)["tokens"].numpy()
        in_process = time.perf_counter() - began
    assert np.array_equal(served, local), "gRPC and in-process outputs differ"

    lat = np.sort(np.asarray(latencies)) * 1000
    print(f"attention_lstm (default size), {args.clients} clients x {args.requests} generate "
          f"requests of {args.steps} events, gRPC over loopback, server on the same 2 cores")
    print(f"latency p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms; "
          f"{len(latencies) / wall:.1f} requests/s; errors {len(errors)}")
    print(f"server memory (RSS): {memory_before:.0f} MiB before, {memory_after:.0f} MiB after")
    print(f"one {args.long_steps}-event request: gRPC {over_grpc:.2f} s, in-process "
          f"{in_process:.2f} s, ratio {over_grpc / in_process:.2f}x (goal <= 1.2)")


if __name__ == "__main__":
    main()
