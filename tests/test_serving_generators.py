"""serving, end to end, for the newer generators: a conditional lstm (key and density), a vae
(interpolate), a wgan_gp (form) and a refine model, served by one real `python -m serving.server`
and reached through `serving.composer.Composer` over `serving.client.Client` (gRPC and REST) and
the client's CLI (`serving.client.main`).

Everything is real: MIDI files written with mido, the session zoo's tiny models (trained and
exported in the tests' process; `trainer.task`'s own path to an export is test_export's and
test_family_seam's) copied into one folder with its models.config, the server started once as
a subprocess on 127.0.0.1 with free ports. Every served answer is
checked bit for bit against the same SavedModel loaded in this process
(`tf.saved_model.load` and the signature called on the same inputs).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from preprocessing.readers import read_file
from serving import client as client_cli
from serving import contract
from serving.client import Client, ClientError
from serving.composer import Composer
from tests.conftest import Server, notes_of, start_server, stop_server, two_voices, write_midi_file
from tests.zoo import SEQ_LEN, Trained, run_main
from trainer import conditions, export

SEGMENT = SEQ_LEN  # every zoo model's window
KEYS = 88
# served name → (the zoo's model: family, representation, hparams; the metadata's model, its
# `generate` inputs)
SERVED = {
    "cond": (("lstm", "notes", {"condition": True}), "lstm",
             "primer,num_steps,temperature,top_k,seed,key,density"),
    "vae": (("vae", "pianoroll", {}), "vae", "primer,num_steps,temperature,threshold,seed"),
    "gan": (("wgan_gp", "pianoroll", {}), "wgan_gp", "num_steps,form,temperature,threshold,seed"),
    "refine": (("refine", "performance", {}), "refine", "pitch,onset,duration"),
}
FORM_ERROR = "form: capital letters A-Z, one per segment, e.g. ABCAB"


# --- fixtures: the zoo's four models → models.config → a server -----------------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serving-generators")


@pytest.fixture(scope="module")
def midi(workdir) -> dict[str, Path]:
    """Two MIDI files to compose from: `primer` and `other` (the interpolation's end)."""
    return {name: write_midi_file(workdir / f"{name}.mid", two_voices(seed))
            for name, seed in (("primer", 950), ("other", 951))}


@pytest.fixture(scope="module")
def pieces(midi) -> dict:
    return {name: read_file(path)[0] for name, path in midi.items()}


@dataclasses.dataclass
class Exports:
    folder: Path
    trained: dict[str, Trained]  # served name → the zoo's model

    @property
    def loaded(self) -> dict[str, object]:
        """served name → its SavedModel, loaded in this process"""
        return {name: t.loaded for name, t in self.trained.items()}


@pytest.fixture(scope="module")
def exports(workdir, zoo) -> Exports:
    """The four zoo models as EXPORTS/NAME/1."""
    folder = workdir / "models"
    trained = {}
    for name, ((family, rep, hparams), _, _) in SERVED.items():
        trained[name] = zoo(family, rep, **hparams)
        shutil.copytree(trained[name].path, folder / name / "1")
    export.write_models_config(folder)
    return Exports(folder, trained)


@pytest.fixture(scope="module")
def server(exports, workdir) -> Server:
    s = start_server(exports.folder / "models.config", workdir / "server-logs")
    yield s
    stop_server(s.proc)


@pytest.fixture(scope="module")
def grpc_client(server) -> Client:
    return Client(server.grpc, timeout=60)


@pytest.fixture(scope="module")
def rest_client(server) -> Client:
    return Client(rest=server.rest, timeout=60)


@pytest.fixture(params=["grpc", "rest"])
def client(request, grpc_client, rest_client) -> Client:
    return grpc_client if request.param == "grpc" else rest_client


@pytest.fixture(scope="module")
def metas(exports) -> dict[str, dict]:
    """Each model's metadata, read in this process."""
    return {name: Composer(loaded).metadata() for name, loaded in exports.loaded.items()}


# --- helpers -------------------------------------------------------------------------------------

def normalized(value) -> np.ndarray:
    """Outputs of any transport comparable: strings as str, numbers as float64."""
    value = np.asarray(value)
    if value.dtype.kind in "OSU":
        return np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else str(s),
                            otypes=[object])(value)
    return value.astype(np.float64)


def in_process(exports: Exports, name: str, signature: str, inputs: dict) -> dict:
    """The signature of the SavedModel loaded in this process, on the same inputs."""
    fn = exports.loaded[name].signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def assert_same_outputs(served: dict, local: dict) -> None:
    assert set(served) == set(local)
    for key in local:
        np.testing.assert_array_equal(normalized(served[key]), normalized(local[key]), key)


def full_notes(piece) -> list[tuple]:
    """(pitch, start, duration, velocity) of every note, sorted."""
    return sorted(zip(piece.pitch.tolist(), piece.start.tolist(), piece.duration.tolist(),
                      piece.velocity.tolist()))


def run_cli(*argv) -> tuple[int, str, str]:
    """`serving.client.main` in this process: (exit status, stdout, stderr)."""
    return run_main(client_cli.main, argv)


def segments(frames: np.ndarray) -> list[np.ndarray]:
    return [frames[k:k + SEGMENT] for k in range(0, len(frames), SEGMENT)]


# --- the server and what it serves --------------------------------------------------------------

def test_models_config_and_ready_line_list_the_four_models(exports, server):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((exports.folder / "models.config").read_text(), config)
    assert sorted((c.name, c.base_path) for c in config.model_config_list.config) == \
        sorted((name, f"/models/{name}") for name in SERVED)
    assert sorted(server.models) == sorted(SERVED)
    assert server.grpc.startswith("127.0.0.1:")


@pytest.mark.parametrize("name", list(SERVED))
def test_served_metadata_names_the_generate_inputs(client, name, metas):
    meta = client.metadata(name)
    assert meta == metas[name]
    _, model, inputs = SERVED[name]
    assert (meta["model"], meta["inputs"]) == (model, inputs)
    assert meta["conditional"] == (1 if name == "cond" else 0)
    signatures = client.signatures(name)
    main = "refine" if name == "refine" else "generate"
    assert set(signatures[main]["inputs"]) == set(inputs.split(","))
    if name == "vae":
        assert set(signatures["interpolate"]["inputs"]) == \
            {"a", "b", "num_points", "temperature", "threshold", "seed"}


# --- a conditional model: key and density ---------------------------------------------------------

@pytest.fixture(scope="module")
def key_profiles(exports) -> np.ndarray:
    """The major and minor profiles the conditional model learned: from its training windows'
    conditions, as the export computes them."""
    return conditions.key_profiles(exports.trained["cond"].x["condition"])


def test_generate_with_key_and_density_sets_the_condition(client, exports, metas, pieces,
                                                          key_profiles):
    meta = metas["cond"]
    primer = contract.primer_steps(pieces["primer"], meta)
    assert len(primer) == SEGMENT

    def generate(**settings):
        inputs = contract.generate_inputs(primer, meta, 12, seed=7, **settings)
        served = client.predict("cond", "generate", inputs)
        assert_same_outputs(served, in_process(exports, "cond", "generate", inputs))
        assert normalized(served["tokens"]).shape == (1, 12)
        return np.asarray(served["condition"], np.float64)[0]

    own = generate()
    in_g = generate(key="G", density=0.5)
    in_a_minor = generate(key="A minor", density=0.25)
    assert own.shape == (conditions.SIZE,)
    # the key's learned histogram, turned to its tonic
    np.testing.assert_allclose(in_g[:12], np.roll(key_profiles[0], 7), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(in_a_minor[:12], np.roll(key_profiles[1], 9), rtol=1e-6,
                               atol=1e-7)
    # the density asked for; the primer's own range
    assert (in_g[conditions.DENSITY], in_a_minor[conditions.DENSITY]) == (0.5, 0.25)
    np.testing.assert_array_equal(in_g[12:14], own[12:14])
    np.testing.assert_array_equal(in_a_minor[12:14], own[12:14])
    assert not np.allclose(own[:12], in_g[:12])
    # density alone keeps the primer's key
    dense = generate(density=1.0)
    np.testing.assert_array_equal(dense[:12], own[:12])
    assert dense[conditions.DENSITY] == 1.0


def test_client_generate_with_key_and_density_is_the_in_process_piece(client, exports, metas,
                                                                      pieces):
    meta = metas["cond"]
    result = Composer(client, model="cond").generate(pieces["primer"], 12, seed=7, key="G",
                                                     density=0.5)
    piece, primer_end = result.piece, result.primer_end
    primer = contract.primer_steps(pieces["primer"], meta)
    inputs = contract.generate_inputs(primer, meta, 12, seed=7, key="G", density=0.5)
    expected, expected_end = contract.to_piece(
        primer, in_process(exports, "cond", "generate", inputs), meta, pieces["primer"].qpm)
    assert primer_end == expected_end > 0
    assert len(piece) > 0 and full_notes(piece) == full_notes(expected)
    # the result also holds the request and the condition the model used
    assert result.inputs["key"].tolist() == ["G"]
    np.testing.assert_array_equal(normalized(result.outputs["condition"]),
                                  normalized(in_process(exports, "cond", "generate",
                                                        inputs)["condition"]))


def test_unknown_key_is_a_client_side_error(grpc_client, pieces):
    composer = Composer(grpc_client, model="cond")
    with pytest.raises(ClientError, match=r"^--key: 'H minor' is not a key"):
        composer.generate(pieces["primer"], 8, key="H minor")
    with pytest.raises(ClientError, match=r"^--density: 1.5 is not in 0-1"):
        composer.generate(pieces["primer"], 8, density=1.5)
    # the server checks it too, for clients that are not this one
    meta = grpc_client.metadata("cond")
    inputs = contract.generate_inputs(contract.primer_steps(pieces["primer"], meta), meta, 8)
    inputs["density"] = np.asarray([1.5], np.float32)
    with pytest.raises(ClientError, match=r"^INVALID_ARGUMENT: density must be <= 1"):
        grpc_client.predict("cond", "generate", inputs)


# --- vae: interpolate -----------------------------------------------------------------------------

def test_interpolate_over_the_wire_is_the_in_process_blend(client, exports, metas, pieces):
    meta = metas["vae"]
    a = contract.primer_steps(pieces["primer"], meta)
    b = contract.primer_steps(pieces["other"], meta)
    inputs = contract.interpolate_inputs(a, b, meta, 3, threshold=0.5, seed=2)
    served = client.predict("vae", "interpolate", inputs)
    local = in_process(exports, "vae", "interpolate", inputs)
    assert_same_outputs(served, local)
    frames = local["frames"][0]
    assert frames.shape == (3 * SEGMENT, KEYS)
    # the ends decode a's and b's own codes: what a blend of a with itself (of b with itself)
    # writes there, whatever the other end
    decoded = {k: segments(in_process(exports, "vae", "interpolate", contract.interpolate_inputs(
        x, x, meta, 3, threshold=0.5, seed=2))["frames"][0]) for k, x in (("a", a), ("b", b))}
    first, _, last = segments(frames)
    np.testing.assert_array_equal(first, decoded["a"][0])
    np.testing.assert_array_equal(last, decoded["b"][2])
    assert not np.array_equal(decoded["a"][0], decoded["b"][2])

    result = Composer(client, model="vae").interpolate(pieces["primer"], pieces["other"], 3,
                                                       threshold=0.5, seed=2)
    piece, start = result.piece, result.primer_end
    expected, _ = contract.to_piece(a[:0], local, meta, pieces["primer"].qpm)
    assert start == 0.0
    assert len(piece) > 0 and full_notes(piece) == full_notes(expected)
    assert piece.end <= 3 * SEGMENT / 4 + 1e-9  # the blend alone, no primer


def test_vae_generate_and_likelihood_over_the_wire(client, exports, metas, pieces):
    meta = metas["vae"]
    primer = contract.primer_steps(pieces["primer"], meta)
    inputs = contract.generate_inputs(primer, meta, 21, seed=4)
    served = client.predict("vae", "generate", inputs)
    assert_same_outputs(served, in_process(exports, "vae", "generate", inputs))
    assert np.asarray(served["frames"]).shape == (1, 21, KEYS)
    frames = {"frames": primer[None]}
    served = client.predict("vae", "log_likelihood", frames)
    assert_same_outputs(served, in_process(exports, "vae", "log_likelihood", frames))
    assert np.asarray(served["nll"]).shape == (1, SEGMENT)


# --- wgan_gp: form --------------------------------------------------------------------------------

def test_generate_with_a_form_is_the_in_process_piece(client, exports, metas, pieces):
    meta = metas["gan"]
    gan = Composer(client, model="gan")
    result = gan.generate(pieces["primer"], 3 * SEGMENT, seed=3, form="ABA")
    piece, primer_end = result.piece, result.primer_end
    inputs = contract.generate_inputs(contract.primer_steps(pieces["primer"], meta), meta,
                                      3 * SEGMENT, seed=3, form="ABA")
    assert inputs["form"].tolist() == ["ABA"]
    served = client.predict("gan", "generate", inputs)
    local = in_process(exports, "gan", "generate", inputs)
    assert_same_outputs(served, local)
    a, b, a_again = segments(local["frames"][0])
    np.testing.assert_array_equal(a, a_again)
    assert not np.array_equal(a, b)
    expected, _ = contract.to_piece(np.zeros((0, KEYS), np.float32), local, meta,
                                    pieces["primer"].qpm)
    assert primer_end == 0.0  # composed from noise: no primer in the piece
    assert len(piece) > 0 and full_notes(piece) == full_notes(expected)
    # lower case is the same form: the client upper-cases it
    again = gan.generate(pieces["primer"], 3 * SEGMENT, seed=3, form=" aba ")
    assert full_notes(again.piece) == full_notes(piece)


def test_gan_serving_default_over_the_wire(client, exports):
    noise = {"noise": np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)}
    served = client.predict("gan", "serving_default", noise)
    assert_same_outputs(served, in_process(exports, "gan", "serving_default", noise))
    probs = np.asarray(served["probs"])
    assert probs.shape == (2, SEGMENT, KEYS) and 0 <= probs.min() and probs.max() <= 1


@pytest.mark.parametrize("form", ["A1B", "AB C"])
def test_an_invalid_form_is_invalid_argument_in_one_line(client, pieces, form):
    transport = "HTTP 400" if client.rest else "INVALID_ARGUMENT"
    with pytest.raises(ClientError) as info:
        Composer(client, model="gan").generate(pieces["primer"], SEGMENT, form=form)
    assert str(info.value) == f"{transport}: {FORM_ERROR}"


# --- refine ---------------------------------------------------------------------------------------

def test_refine_over_the_wire_is_the_in_process_refinement(client, exports, metas, pieces):
    meta = metas["refine"]
    piece = pieces["primer"]
    refined = Composer(client, model="refine").refine(piece).piece
    inputs, rows = contract.refine_inputs(piece, meta)
    served = client.predict("refine", "refine", inputs)
    local = in_process(exports, "refine", "refine", inputs)
    assert_same_outputs(served, local)
    expected = contract.refined(piece, rows, local, meta)
    assert full_notes(refined) == full_notes(expected)
    # the notes stay where they were; velocities come from the model
    assert sorted(zip(refined.pitch.tolist(), refined.start.tolist())) == \
        sorted(zip(piece.pitch.tolist(), piece.start.tolist()))
    assert refined.velocity.min() >= 1 and refined.velocity.max() <= 127
    assert (refined.duration > 0).all()


# --- the client CLI -------------------------------------------------------------------------------

def test_cli_key_density_and_refine_write_the_client_piece(server, grpc_client, midi, pieces,
                                                          tmp_path):
    out = tmp_path / "cond.mid"
    rc, stdout, stderr = run_cli("--server", server.grpc, "--model", "cond", "--primer",
                                 midi["primer"], "--steps", 12, "--seed", 7, "--key", "G",
                                 "--density", 0.5, "--refine", "refine", "--out", out)
    assert rc == 0, stderr
    assert stdout.strip().endswith(f"→ {out}")
    cond = Composer(grpc_client, model="cond")
    composition = cond.generate(pieces["primer"], 12, seed=7, key="G", density=0.5)
    generated = composition.piece
    refined = cond.refine(composition, refiner=Composer(grpc_client, model="refine"))
    assert refined.primer_end == composition.primer_end > 0
    assert set(refined.outputs) == {"velocity", "duration"}
    expected = refined.piece
    (back,) = read_file(out)
    assert len(back) > 0 and full_notes(back) == full_notes(expected)
    assert notes_of(back) != notes_of(generated) or \
        back.velocity.tolist() != generated.velocity.tolist()


def test_cli_interpolate_writes_the_blend(server, rest_client, midi, pieces, tmp_path):
    out = tmp_path / "blend.mid"
    rc, stdout, stderr = run_cli("--rest", server.rest, "--model", "vae", "--primer",
                                 midi["primer"], "--interpolate", midi["other"], "--steps", 3,
                                 "--threshold", 0.5, "--seed", 2, "--out", out)
    assert rc == 0, stderr
    expected = Composer(rest_client, model="vae").interpolate(
        pieces["primer"], pieces["other"], 3, threshold=0.5, seed=2).piece
    (back,) = read_file(out)
    assert len(back) > 0 and full_notes(back) == full_notes(expected)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_cli_form_writes_the_repeating_piece(server, grpc_client, midi, pieces, tmp_path,
                                             transport):
    out = tmp_path / "gan.mid"
    where = ["--server", server.grpc] if transport == "grpc" else ["--rest", server.rest]
    rc, stdout, stderr = run_cli(*where, "--model", "gan", "--primer", midi["primer"],
                                 "--steps", 4 * SEGMENT, "--seed", 5, "--form", "ABAB",
                                 "--out", out)
    assert rc == 0, stderr
    expected = Composer(grpc_client, model="gan").generate(pieces["primer"], 4 * SEGMENT,
                                                           seed=5, form="ABAB").piece
    (back,) = read_file(out)
    assert len(back) > 0 and full_notes(back) == full_notes(expected)


CLI_ERRORS = {
    "key on the vae": (["--server", "{grpc}", "--model", "vae", "--key", "C"],
                       "error: --key: vae is not conditional (train it with --hparams "
                       "condition=true)"),
    "density on the gan": (["--rest", "{rest}", "--model", "gan", "--density", "0.5"],
                           "error: --density: wgan_gp is not conditional (train it with "
                           "--hparams condition=true)"),
    "form on the vae": (["--server", "{grpc}", "--model", "vae", "--form", "AB"],
                        "error: --form: vae does not take a form (wgan_gp does)"),
    "interpolate on the gan": (["--server", "{grpc}", "--model", "gan", "--interpolate",
                                "{other}"],
                               "error: --interpolate: wgan_gp has no interpolate signature "
                               "(it has generate, metadata, serving_default)"),
    "refine with the vae": (["--server", "{grpc}", "--model", "cond", "--refine", "vae"],
                            "error: --refine: vae is not a refine model (train one with python "
                            "-m trainer.task --model refine)"),
    "form with a digit over gRPC": (["--server", "{grpc}", "--model", "gan", "--form", "ab1"],
                                    f"error: INVALID_ARGUMENT: {FORM_ERROR}"),
    "form with a digit over REST": (["--rest", "{rest}", "--model", "gan", "--form", "ab1"],
                                    f"error: HTTP 400: {FORM_ERROR}"),
}


@pytest.mark.parametrize("case", list(CLI_ERRORS))
def test_cli_errors_are_one_line_and_exit_2(case, server, midi, tmp_path):
    args, message = CLI_ERRORS[case]
    args = [a.format(grpc=server.grpc, rest=server.rest, other=midi["other"]) for a in args]
    out = tmp_path / "out.mid"
    rc, stdout, stderr = run_cli(*args, "--primer", midi["primer"], "--steps", SEGMENT,
                                 "--out", out)
    assert rc == 2
    assert stderr.splitlines() == [message]
    assert stdout == "" and not out.exists()


def test_cli_gan_without_a_form(server, midi, tmp_path):
    out = tmp_path / "gan.mid"
    rc, stdout, stderr = run_cli("--server", server.grpc, "--model", "gan", "--primer",
                                 midi["primer"], "--steps", 2 * SEGMENT, "--out", out)
    assert rc == 0, stderr
    assert len(read_file(out)[0]) > 0
