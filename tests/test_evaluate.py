"""`python -m evaluation` end to end: a real exported model, real MIDI files, real report."""

from __future__ import annotations

import json
import math

import pytest

from evaluation import evaluate
from tests.conftest import make_piece, notes_of, write_midi_file
from trainer import task

MELODIES = [[(60 + (k * 5 + i * (k + 2)) % 12, float(i), 1.0) for i in range(24)]
            for k in range(6)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Six small pieces, an attention_lstm trained on them for 2 epochs, exported."""
    root = tmp_path_factory.mktemp("evaluate")
    corpus = root / "corpus"
    corpus.mkdir()
    for k, melody in enumerate(MELODIES):
        bass = [(48 + k, float(b), 4.0) for b in range(0, 24, 4)]
        write_midi_file(corpus / f"piece{k}.mid", [melody, bass])
    argv = ["--model", "attention_lstm", "--data", str(corpus), "--epochs", "2", "--seq-len",
            "8", "--batch-size", "8", "--hparams", "units=16,dense=16,attention_units=8",
            "--sample-every", "0", "--job-dir", str(root / "job"), "--export-dir",
            str(root / "saved")]
    assert task.main(argv) == 0
    return root, corpus


def test_report_holds_every_section(exported):
    root, corpus = exported
    out = root / "eval"
    status = evaluate.main(["--model", str(root / "saved" / "attention_lstm"), "--data",
                            str(corpus), "--train-data", str(corpus), "--samples", "3",
                            "--steps", "24", "--seed", "1", "--out", str(out)])
    assert status == 0
    report = json.loads((out / "report.json").read_text())
    like = report["likelihood"]
    # teacher-forced NLL in nats per event, and perplexity = exp(NLL)
    assert like["nll_per_event"] > 0 and like["events"] > 0
    assert like["perplexity"] == pytest.approx(math.exp(like["nll_per_event"]))
    assert like["nll_per_event"] == pytest.approx(
        like["token_nll"] + like["duration_nll"] + like["shift_nll"])
    assert 0 <= report["features"]["overlap_mean"] <= 1
    assert "pitch_class_histogram" in report["features"]
    assert report["copying"]["longest_copied_run"] >= 1
    assert 0 <= report["copying"]["ngram8_overlap"] <= 1
    assert 0 < report["degeneracy"]["most_common_share"] <= 1
    assert set(report["drift"]) == {"pitch", "duration"}
    assert len(report["generated_notes"]) == 3
    assert (out / "report.md").read_text().startswith("# Evaluation of")
    for png in ("pitch_classes.png", "sample_0.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_report(exported, tmp_path):
    root, corpus = exported
    reports = []
    for name in ("a", "b"):
        assert evaluate.main(["--model", str(root / "saved" / "attention_lstm"), "--data",
                              str(corpus), "--train-data", str(corpus), "--samples", "2",
                              "--steps", "16", "--seed", "4", "--out", str(tmp_path / name)]) == 0
        reports.append(json.loads((tmp_path / name / "report.json").read_text()))
    assert reports[0] == reports[1]


def test_onset_tokens_group_notes_that_start_together():
    from tests.conftest import make_piece

    piece = make_piece([(60, 0, 1), (64, 0, 1), (67, 1, 1)])
    assert evaluate.onset_tokens(piece) == ["60.64", "67"]


def test_missing_data_is_a_clear_error(exported, tmp_path, capsys):
    root, _ = exported
    status = evaluate.main(["--model", str(root / "saved" / "attention_lstm"), "--data",
                            str(tmp_path / "nothing"), "--train-data", str(tmp_path),
                            "--out", str(tmp_path / "out")])
    assert status == 2
    assert "nothing" in capsys.readouterr().err


@pytest.mark.parametrize("rep", ["notes", "pianoroll"])
def test_features_compare_with_the_held_out_pieces_as_the_model_hears_them(rep):
    """On the model's own grid a piece is unchanged; on a grid of one step per quarter note the
    eighth notes become quarter notes on the beat (what a perfect model would write)."""
    meta = {"representation": rep, "steps_per_quarter": 4, "encoding": "active",
            "max_duration": 32, "max_shift": 32, "chords": "split", "keys": 88}
    on_grid = make_piece([(60, 0, 1), (64, 0, 1), (67, 1, 0.5), (65, 1.5, 0.5), (64, 2, 2)])
    assert notes_of(evaluate.as_heard(on_grid, meta)) == notes_of(on_grid)
    passing = make_piece([(48, 0, 2), (64, 0, 1), (65, 1, 0.5), (67, 1.5, 0.5)])
    heard = evaluate.as_heard(passing, {**meta, "steps_per_quarter": 1})
    assert notes_of(heard) == [(48, 0, 2), (64, 0, 1), (65, 1, 1), (67, 2, 1)]
