"""`serving.composer.Composer`, the Python API: the README's example run as written (in this
process and against a real `python -m serving.server`), primers as paths, bytes and pieces,
MIDI bytes, and one-line errors.

The session zoo's tiny attention_lstm (the flow, not the music, is under test) is copied to a
temporary saved_models/ with a primer.mid beside it, as the README's example expects.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from preprocessing.readers import read_file
from serving import contract
from serving.client import Client
from serving.composer import Composer, Composition
from serving.errors import ComposerError
from tests.conftest import (
    BASS,
    MELODY,
    notes_of,
    start_server,
    stop_server,
    write_midi_file,
)
from trainer import export

REPO = Path(__file__).resolve().parents[1]
ABC = b"X:1\nT:scale\nM:4/4\nL:1/4\nK:C\nC D E F | G A B c | c B A G | F E D C |]\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory, zoo) -> Path:
    """A folder holding saved_models/attention_lstm/1 (the zoo's, and models.config) and
    primer.mid."""
    root = tmp_path_factory.mktemp("composer")
    shutil.copytree(zoo("attention_lstm", "notes").path,
                    root / "saved_models" / "attention_lstm" / "1")
    export.write_models_config(root / "saved_models")
    write_midi_file(root / "primer.mid", [MELODY, BASS])
    return root


@pytest.fixture(scope="module")
def composer(root) -> Composer:
    return Composer(root / "saved_models" / "attention_lstm")


@pytest.fixture(scope="module")
def server(root):
    s = start_server(root / "saved_models" / "models.config", root / "server-logs")
    yield s
    stop_server(s.proc)


def readme_example() -> str:
    """The first python block of README.md's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def full_notes(piece) -> list[tuple]:
    return sorted(zip(piece.pitch.tolist(), piece.start.tolist(), piece.duration.tolist(),
                      piece.velocity.tolist()))


# --- the README's example -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_readme_example_runs_in_process_and_against_a_server(root, server, monkeypatch,
                                                            transport):
    code = readme_example()
    assert 'Composer("saved_models/attention_lstm")' in code and "grpc://127.0.0.1:8500" in code
    address = f"grpc://{server.grpc}" if transport == "grpc" else server.rest
    monkeypatch.chdir(root)
    for name in ("out.mid", "roll.png"):
        (root / name).unlink(missing_ok=True)
    scope = {}
    # the served piece equals the local one: the example asserts it
    exec(compile(code.replace("grpc://127.0.0.1:8500", address), "README.md", "exec"), scope)
    assert isinstance(scope["result"], Composition) and scope["result"].primer_end > 0
    assert (root / "out.mid").read_bytes() == scope["midi"]
    assert (root / "roll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (back,) = read_file(root / "out.mid")
    assert len(back) == len(scope["result"].piece) > 0


# --- primers: a path, bytes, a Piece, a Composition, the default --------------------------------

def test_a_primer_as_path_bytes_or_piece_is_the_same_request(composer, root):
    path = root / "primer.mid"
    data = path.read_bytes()
    by_path = composer.generate(path, steps=12, seed=3)
    requests = {"str": composer.generate(str(path), steps=12, seed=3),
                "bytes": composer.generate(data, steps=12, seed=3),
                "bytes with a hint": composer.generate(data, steps=12, seed=3,
                                                       primer_format="mid"),
                "piece": composer.generate(read_file(path)[0], steps=12, seed=3)}
    for name, result in requests.items():
        assert result.midi_bytes() == by_path.midi_bytes(), name
        assert result.primer_end == by_path.primer_end > 0, name
        np.testing.assert_array_equal(result.inputs["primer"], by_path.inputs["primer"])
    assert by_path.outputs["tokens"].shape == (1, 12)
    # the in-process answer is the signature's own, through the contract's helpers
    primer = contract.primer_steps(read_file(path)[0], composer.metadata())
    inputs = contract.generate_inputs(primer, composer.metadata(), 12, seed=3)
    expected, _ = contract.to_piece(primer, composer.call("generate", inputs),
                                    composer.metadata(), 120.0)
    assert full_notes(by_path.piece) == full_notes(expected)


def test_a_composition_primes_like_its_piece_and_other_seeds_differ(composer, root):
    first = composer.generate(root / "primer.mid", steps=12, seed=3)
    again = composer.generate(first, steps=12, seed=3, primer_steps=20)
    assert again.midi_bytes() == composer.generate(first.piece, steps=12, seed=3,
                                                   primer_steps=20).midi_bytes()
    assert again.primer_end > first.primer_end  # the primer now holds composed events too
    assert composer.generate(root / "primer.mid", steps=12, seed=4).midi_bytes() != \
        first.midi_bytes()


def test_notation_bytes_are_sniffed_or_named(composer, tmp_path):
    sniffed = composer.generate(ABC, steps=4, seed=1)
    named = composer.generate(ABC, steps=4, seed=1, primer_format="abc")
    (tmp_path / "scale.abc").write_bytes(ABC)
    from_file = composer.generate(tmp_path / "scale.abc", steps=4, seed=1)
    assert sniffed.midi_bytes() == named.midi_bytes() == from_file.midi_bytes()
    assert sniffed.piece.pitch[0] == 60  # the scale's C4 opens the piece


def test_without_a_primer_the_first_bach_chorale_primes(composer):
    from preprocessing.readers import corpus_paths

    result = composer.generate(None, steps=4, seed=1)
    chorale = composer.generate(corpus_paths("bach")[0], steps=4, seed=1)
    assert result.midi_bytes() == chorale.midi_bytes()


# --- the result: MIDI bytes and files, PNG, WAV -------------------------------------------------

def test_midi_bytes_read_back_as_the_piece(composer, root, tmp_path):
    result = composer.generate(root / "primer.mid", steps=16, seed=5)
    data = result.midi_bytes()
    assert data[:4] == b"MThd"
    (back,) = read_file("composed.mid", data=data)
    assert notes_of(back) == notes_of(result.piece)
    assert result.write_midi(tmp_path / "a" / "out.mid").read_bytes() == data
    png = result.write_png(tmp_path / "roll.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_wav_renders_or_says_why_not(composer, tmp_path):
    result = composer.generate(None, steps=4, seed=1)
    try:
        wav = result.write_wav(tmp_path / "out.wav")
    except ComposerError as exc:  # no FluidSynth or SoundFont on this machine
        assert "\n" not in str(exc) and ("fluidsynth" in str(exc) or "SoundFont" in str(exc))
        return
    assert wav.read_bytes()[:4] == b"RIFF"


# --- errors: one type, one line -------------------------------------------------------------------

BAD_PRIMERS = {
    "bytes of no known format": (b"hello, world", {},
                                 r"^primer: bytes that are not MIDI \(no MThd header\)"),
    "a truncated MIDI file": (b"MThd\x00\x00\x00\x06\x00\x01", {}, r"^primer\.mid: "),
    "empty bytes with a hint": (b"", {"primer_format": "mid"}, r"^primer\.mid: empty file$"),
    "an unknown format": (b"MThd", {"primer_format": "wav"},
                          r"^primer_format: 'wav' is not one of mid, midi, xml"),
    "a missing file": ("no/such/primer.mid", {}, r"^no/such/primer\.mid: cannot read"),
    "an unsupported file": ("primer.wav", {}, r"^primer\.wav: unsupported file type \.wav"),
    "a number": (42, {}, r"^primer: a file path, the file's bytes or a Piece, not int$"),
}


@pytest.mark.parametrize("case", list(BAD_PRIMERS))
def test_a_bad_primer_is_one_composer_error_line(composer, case):
    primer, kwargs, message = BAD_PRIMERS[case]
    with pytest.raises(ComposerError, match=message) as info:
        composer.generate(primer, steps=4, **kwargs)
    assert "\n" not in str(info.value) and "/tmp/" not in str(info.value)


def test_requests_the_model_refuses_are_one_line(composer, root):
    with pytest.raises(ComposerError, match=r"^num_steps must be >= 1"):
        composer.generate(root / "primer.mid", steps=0)
    with pytest.raises(ComposerError, match=r"^--form: attention_lstm does not take a form"):
        composer.generate(root / "primer.mid", steps=4, form="AB")
    with pytest.raises(ComposerError, match=r"^--interpolate: attention_lstm has no interpolate"):
        composer.interpolate(root / "primer.mid", root / "primer.mid", 3)
    with pytest.raises(ComposerError, match=r"^--refine: attention_lstm is not a refine model"):
        composer.refine(root / "primer.mid")
    with pytest.raises(ComposerError, match=r"no signature 'nope' \(it has generate"):
        composer.call("nope", {})


def test_targets_that_cannot_work_are_one_line(root):
    with pytest.raises(ComposerError, match=r"no-such-model: no exported SavedModel"):
        Composer(root / "saved_models" / "no-such-model")
    with pytest.raises(ComposerError, match=r"attention_lstm: no version 7 \(have: \[1\]\)"):
        Composer(root / "saved_models", model="attention_lstm", version=7)
    with pytest.raises(ComposerError, match=r"^model: which model of 127\.0\.0\.1:1 "):
        Composer("grpc://127.0.0.1:1")
    with pytest.raises(ComposerError, match=r"^label: only served models have labels"):
        Composer(root / "saved_models" / "attention_lstm", label="stable")
    with pytest.raises(ComposerError, match=r"^status: .* is loaded in this process"):
        Composer(root / "saved_models" / "attention_lstm").status()
    down = Composer(Client("127.0.0.1:1", timeout=5), model="attention_lstm")
    with pytest.raises(ComposerError, match=r"^server 127\.0\.0\.1:1 is not reachable$"):
        down.generate(root / "primer.mid", steps=4)


def test_a_loaded_savedmodel_and_a_folder_are_the_same_composer(composer, root):
    import tensorflow as tf

    loaded = Composer(tf.saved_model.load(str(root / "saved_models" / "attention_lstm" / "1")))
    assert loaded.metadata() == composer.metadata()
    assert loaded.signatures() == composer.signatures()
    assert set(composer.signatures()["generate"]["inputs"]) == \
        set(composer.metadata()["inputs"].split(","))
    assert composer.name == str(root / "saved_models" / "attention_lstm" / "1")
    a = loaded.generate(root / "primer.mid", steps=8, seed=2)
    b = composer.generate(root / "primer.mid", steps=8, seed=2)
    assert a.midi_bytes() == b.midi_bytes()


# --- what serving imports -----------------------------------------------------------------------

@pytest.mark.slow
def test_serving_never_imports_trainer_and_preprocessing_never_tensorflow(tmp_path):
    code = ("import sys; import serving.composer, serving.client, serving.cli_flags; "
            "import preprocessing.readers, preprocessing.writers, preprocessing.plot; "
            "from serving import contract, errors, transports; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('trainer', 'tensorflow')]; "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
