"""--strategy multiworker: two real worker processes on localhost under one TF_CONFIG."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import two_voices, write_midi_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # worker subprocesses


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_train_in_lockstep(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    job = tmp_path / "job"
    corpus = tmp_path / "corpus"  # small MIDI files: each worker parses them itself
    corpus.mkdir()
    for k in range(12):
        write_midi_file(corpus / f"piece{k}.mid", two_voices(k))
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                      "task": {"type": "worker", "index": index}}),
               "COMPOSER_CACHE": str(tmp_path / f"cache{index}")}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "trainer.task", "--model", "lstm", "--strategy", "multiworker",
             "--data", str(corpus), "--epochs", "2", "--seq-len", "8", "--batch-size", "8",
             "--hparams", "units=16,layers=1,dense=8,embedding=8,condition=false",
             "--sample-every", "0",
             "--job-dir", str(job), "--export-dir", str(tmp_path / "saved")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=280)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    def epochs(text):
        return [json.loads(line) for line in text.splitlines() if line.startswith('{"epoch"')]

    chief, other = epochs(outputs[0]), epochs(outputs[1])
    assert [e["epoch"] for e in chief] == [0, 1]
    # one model, replicated: both workers see the same all-reduced loss, on a two-worker cluster
    assert chief == other
    assert all(e["workers"] == 2 for e in chief)
    # the chief writes the job folder; the other worker only its own corner
    rows = list(csv.DictReader(open(job / "metrics.csv")))
    assert [float(r["loss"]) for r in rows] == pytest.approx([e["loss"] for e in chief])
    assert (job / "model.keras").exists() and (job / "config.json").exists()
    assert not (job / ".worker-1" / "metrics.csv").exists()
    # the chief exports the trained model once
    assert sorted(p.name for p in (tmp_path / "saved" / "lstm").iterdir()) == ["1"]


def test_multiworker_without_tf_config_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-m", "trainer.task", "--model", "lstm", "--strategy", "multiworker",
         "--limit", "4", "--job-dir", str(tmp_path / "job"), "--hparams", "units=8,layers=1",
         "--export-dir", str(tmp_path / "saved")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert result.returncode == 2
    assert "TF_CONFIG" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "job").exists()
