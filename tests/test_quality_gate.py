"""The quality gate (`evaluation.floors`, applied by bench/quality.py to every family): a
deliberately broken tiny model, exported and evaluated for real, is named with the floors it
falls short of; a report that clears them passes."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from evaluation import evaluate, floors
from preprocessing.piece import quantize
from preprocessing.readers import read_file
from serving import contract
from serving.composer import Composer
from tests.zoo import SEQ_LEN, TINY, run_main
from trainer import export
from trainer.models import MODELS


@pytest.fixture(scope="module")
def broken_report(zoo, tmp_path_factory):
    """The report of an lstm on piano rolls whose every key is off (its output bias -30)."""
    root = tmp_path_factory.mktemp("gate")
    _, spec = zoo.dataset("pianoroll")
    model = MODELS["lstm"].build(spec, dict(MODELS["lstm"].defaults, **TINY["lstm"]), SEQ_LEN)
    out = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    out.bias.assign(np.full(out.bias.shape, -30.0, np.float32))
    path = export.export(model, "lstm", spec, SEQ_LEN, root / "exports", name="broken")
    rc, _, err = run_main(evaluate.main, [
        "--model", path, "--data", zoo.corpus, "--train-data", zoo.corpus, "--samples", 3,
        "--steps", 16, "--seed", 1, "--out", root / "eval"])
    assert rc == 0, err
    return root / "eval" / "report.json"


def test_a_silent_model_is_named_with_the_floors_it_misses(broken_report):
    report = json.loads(broken_report.read_text())
    assert report["degeneracy"]["silent_samples"] == 3

    rc, out, err = run_main(floors.main, [broken_report, "--name", "broken"])

    assert rc == 1
    assert "broken: silent samples 3, needs = 0" in err
    assert "broken: silent-step share 1, needs <= 0.3" in err
    assert "broken: note density / held-out 0, needs in 0.5-2" in err
    assert out.count("FAIL") == len(err.splitlines())  # one line per floor missed, no other
    assert "ok   longest copied run (onsets)" in out  # nothing copied: that floor holds


def passing_report(**changes) -> dict:
    report = {"degeneracy": {"silent_samples": 0, "silent_step_share": 0.05,
                             "note_density_ratio": 1.1},
              "features": {"polyphony": {"overlap": 0.76}, "overlap_mean": 0.85},
              "copying": {"longest_copied_run": 4}, "model": "saved_models/x/1"}
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = report
        for key in path:
            node = node[key]
        node[last] = value
    return report


@pytest.mark.parametrize("changes, floor", [
    ({}, None),
    ({"degeneracy__note_density_ratio": 2.5}, "note density / held-out 2.5, needs in 0.5-2"),
    ({"degeneracy__note_density_ratio": 0.4}, "note density / held-out 0.4, needs in 0.5-2"),
    ({"features__polyphony__overlap": 0.59}, "polyphony overlap 0.59, needs >= 0.6"),
    ({"features__overlap_mean": 0.69}, "overall overlap 0.69, needs >= 0.7"),
    ({"features__note_length_histogram": {"overlap": 0.29}},
     "lowest feature overlap 0.29, needs >= 0.3"),
    ({"copying__longest_copied_run": 17}, "longest copied run (onsets) 17, needs <= 16"),
])
def test_each_floor_at_its_edge(changes, floor):
    assert floors.shortfalls("m", passing_report(**changes)) == ([f"m: {floor}"] if floor else [])


def test_autoencoder_floors_apply_to_reports_with_interpolations():
    """The vae's floors (reconstruction F1, F1 at the blends' ends) apply where the report has an
    interpolation section, and only there."""
    assert len(floors.check(passing_report())) == 7
    vae = passing_report(likelihood={"f1": 0.59}, interpolation={"end_f1": 0.49})
    assert floors.shortfalls("vae", vae) == ["vae: reconstruction F1 0.59, needs >= 0.6",
                                             "vae: interpolation end F1 0.49, needs >= 0.5"]
    vae.update(likelihood={"f1": 0.6}, interpolation={"end_f1": 0.5})
    assert floors.shortfalls("vae", vae) == [] and len(floors.check(vae)) == 9


def test_a_file_that_is_not_a_report_is_one_line(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text('{"degeneracy": {}}')
    rc, out, err = run_main(floors.main, [bad])
    assert rc == 2 and err.count("\n") == 1 and f"{bad}: not an evaluation report" in err


def test_the_gate_resumes_from_the_rows_it_kept(tmp_path, monkeypatch):
    """bench/quality.py keeps each finished row; `--resume` reads a row kept for the same
    evaluation settings instead of training it again, and runs it again for other settings.
    (The training is stubbed: a row at its documented budget takes up to 40 minutes.)"""
    from bench import quality

    runs = []

    def train_and_evaluate(name, family, flags, out, samples, steps):
        runs.append((name, samples, steps))
        return {**passing_report(), "metadata": {"representation": "pianoroll"},
                "likelihood": {"nll_per_frame": 6.0 + len(runs)}}, "1.0"

    monkeypatch.setattr(quality, "train_and_evaluate", train_and_evaluate)
    first = quality.run_row("rnn_nade", tmp_path, 10, 128, resume=True)  # nothing kept yet
    kept = json.loads((tmp_path / "rows" / "rnn_nade.json").read_text())
    assert kept == first and kept["report"]["likelihood"]["nll_per_frame"] == 7.0
    assert kept["commit"] and kept["date"] and (kept["samples"], kept["steps"]) == (10, 128)
    assert quality.run_row("rnn_nade", tmp_path, 10, 128, resume=True) == first
    assert runs == [("rnn_nade", 10, 128)]
    quality.run_row("rnn_nade", tmp_path, 10, 64, resume=True)  # other settings: run again
    quality.run_row("rnn_nade", tmp_path, 10, 64, resume=False)  # and without --resume
    assert runs == [("rnn_nade", 10, 128), ("rnn_nade", 10, 64), ("rnn_nade", 10, 64)]
    assert not list((tmp_path / "rows").glob("*.partial"))


def test_the_chord_bench_gives_each_grid_step_the_nll_of_what_starts_there(zoo):
    """bench/chords_nll.py compares two tokenizations step by step: each grid step where notes
    (or a rest) start gets the summed NLL of their events; the first step, which no model
    predicts, is left out."""
    from bench.chords_nll import step_nll

    trained = zoo("lstm", "notes")
    composer = Composer(str(trained.path))
    (piece,) = read_file(zoo.corpus / "piece0.mid")
    events = contract.primer_steps(piece, composer.metadata(), length=10**9)
    total = float(np.sum(composer.call("log_likelihood",
                                       {"events": np.asarray([events], object)})["nll"]))

    by_step, left_out = step_nll(composer, piece)

    onsets, _ = quantize(piece, trained.spec.steps_per_quarter)
    assert set(onsets.tolist()) <= set(by_step)  # every onset, and the rests' steps
    assert len(by_step) < len(events)  # the two voices' notes that start together share a step
    assert left_out == {0}  # the first step: its first event is given, not predicted
    assert sum(by_step.values()) == pytest.approx(total, rel=1e-5)
