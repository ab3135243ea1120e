"""`python -m evaluation` end to end: a real exported model (the session zoo's attention_lstm),
real MIDI files, real report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evaluation import evaluate
from tests.conftest import make_piece, notes_of


@pytest.fixture(scope="module")
def exported(zoo, tmp_path_factory):
    """The session zoo's attention_lstm (six two-voice pieces, trained for 2 epochs, exported):
    (its SavedModel version folder, the corpus it was trained on, a folder for this module)."""
    return zoo("attention_lstm", "notes").path, zoo.corpus, tmp_path_factory.mktemp("evaluate")


EVAL_FLAGS = ["--samples", "3", "--steps", "24", "--seed", "1"]


def run_evaluate(exported, out) -> dict:
    """`python -m evaluation` (in this process) on the module's model and corpus, writing `out`;
    returns its report.json."""
    model, corpus, _ = exported
    status = evaluate.main(["--model", str(model), "--data",
                            str(corpus), "--train-data", str(corpus), *EVAL_FLAGS,
                            "--out", str(out)])
    assert status == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def report(exported):
    """One evaluation of the module's model, computed once: (its folder, report.json)."""
    *_, root = exported
    return root / "eval", run_evaluate(exported, root / "eval")


def test_report_holds_every_section(report):
    out, report = report
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
    motion = report["degeneracy"]["voice_motion"]
    assert motion > 0 and report["degeneracy"]["voice_motion_ratio"] > 0
    assert set(report["drift"]) == {"pitch", "duration"}
    assert len(report["generated_notes"]) == 3
    assert (out / "report.md").read_text().startswith("# Evaluation of")
    for png in ("pitch_classes.png", "sample_0.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_report(exported, report, tmp_path):
    # a second run (a fresh load of the model) with the module's seed: the same report
    assert run_evaluate(exported, tmp_path / "again") == report[1]


def test_samples_are_drawn_at_the_temperature_asked(exported, report):
    """--temperature reaches every sample: each is what the model composes at it."""
    from serving.composer import Composer

    model, corpus, _ = exported
    heldout = evaluate.load_pieces([str(corpus)], "all")
    composer = Composer(str(model))
    cold = evaluate.generate_samples(composer, heldout, 2, 24, seed=1, temperature=0.25)
    for i, sample in enumerate(cold):
        alone = composer.generate(heldout[i], 24, seed=1 + i, temperature=0.25,
                                  accompany=False)
        keep = alone.piece.start >= alone.primer_end
        assert sample.pitch.tolist() == alone.piece.pitch[keep].tolist()
        np.testing.assert_allclose(sample.start, alone.piece.start[keep] - alone.primer_end)
    warm = evaluate.generate_samples(composer, heldout, 2, 24, seed=1)
    assert any(notes_of(a) != notes_of(b) for a, b in zip(cold, warm))
    assert report[1]["temperature"] == 1.0


def test_onset_tokens_group_notes_that_start_together():
    from tests.conftest import make_piece

    piece = make_piece([(60, 0, 1), (64, 0, 1), (67, 1, 1)])
    assert evaluate.onset_tokens(piece) == ["60.64", "67"]


def test_missing_data_is_a_clear_error(exported, tmp_path, capsys):
    model, *_ = exported
    status = evaluate.main(["--model", str(model), "--data",
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


def test_a_melody_model_hears_the_top_voice():
    """`bars` models write melodies: the held-out pieces they are compared with are their top
    voices on the bars' sixteenth grid, not the four-voice pieces."""
    chorale = make_piece([(48, 0, 4), (55, 0, 2), (64, 0, 1), (67, 1, 1), (72, 2, 2),
                          (57, 2, 2), (50, 4, 4), (71, 4, 2), (72, 6, 2)])
    heard = evaluate.as_heard(chorale, {"representation": "bars", "steps_per_quarter": 4})
    assert notes_of(heard) == [(64, 0, 1), (67, 1, 1), (72, 2, 2), (71, 4, 2), (72, 6, 2)]
