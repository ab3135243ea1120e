"""Compose from Python with an exported model, in this process or on a server:
`Composer("saved_models/lstm").generate("primer.mid", steps=200).write_midi("out.mid")`."""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from pathlib import Path

import numpy as np

from preprocessing import audio, plot, writers
from preprocessing.piece import InputError, Piece
from serving import contract
from serving.errors import ComposerError
from serving.transports import Transport, open_transport


def _one_error(method):
    """Every failure of a public method is a ComposerError with its one-line message."""
    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (InputError, audio.AudioUnavailable) as exc:
            raise ComposerError(str(exc)) from exc
    return wrapped


@dataclasses.dataclass
class Composition:
    """A composed piece and the request that made it.

    Attributes:
        piece: the primer (if the model reads one) followed by what the model composed.
        primer_end: where the primer ends, in quarter notes (0.0: no primer in the piece).
        inputs: the request's tensors (e.g. `primer`, `seed`).
        outputs: the signature's outputs (e.g. `tokens`, and `condition` for conditional
            models; a refined piece's are the refine model's `velocity` and `duration`).
        metadata: the composing model's metadata (its grid: `steps_per_quarter`, ...).
        source: where the composing model runs (a SavedModel folder, or NAME at a server).
    """

    piece: Piece
    primer_end: float
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    metadata: dict
    source: str = ""

    def midi_bytes(self, program: int = 0) -> bytes:
        """The piece as a one-track MIDI file's bytes (General MIDI `program`, 0 = piano)."""
        return writers.midi_bytes(self.piece, program)

    def write_midi(self, path: str | Path, program: int = 0) -> Path:
        """Writes the piece as a MIDI file; returns its path."""
        return writers.write_midi(self.piece, path, program)

    @_one_error
    def write_wav(self, path: str | Path) -> Path:
        """Renders the piece to a WAV file with FluidSynth and a General MIDI SoundFont.

        Raises:
            ComposerError: FluidSynth or a SoundFont is not installed.
        """
        with tempfile.TemporaryDirectory(prefix="composer-wav-") as folder:
            return audio.render_wav(self.write_midi(Path(folder) / "piece.mid"), path)

    def write_png(self, path: str | Path, title: str | None = None) -> Path:
        """Draws the piano roll with the primer marked; the title defaults to model (source)."""
        return plot.save_roll_png(self.piece, path, self.metadata["steps_per_quarter"],
                                  self.primer_end,
                                  f"{self.metadata['model']} ({self.source})" if title is None
                                  else title)


class Composer:
    """An exported model to compose with: `generate`, `interpolate` (vae), `refine` (refine
    models), `metadata`, `signatures`, `status` (servers) and the raw `call`.

    Args:
        target: where the model is: a SavedModel folder (saved_models/NAME, newest version, or a
            version folder), "grpc://HOST:PORT" or "http://HOST:PORT" (TF Serving or
            `python -m serving.server`; name the model with `model`), a `serving.client.Client`,
            a SavedModel loaded with `tf.saved_model.load`, or any `Transport`.
        model: the served model's name; with a folder target, a model folder inside it.
        version: a version number (default: the newest).
        label: a served version label (e.g. "stable").
        timeout: seconds a server may take per request.

    Raises:
        ComposerError: no such SavedModel or version, or a server target without `model`.
    """

    @_one_error
    def __init__(self, target, model: str | None = None, version: int | None = None,
                 label: str = "", timeout: float = 60.0):
        self.transport: Transport = open_transport(target, model, version, label, timeout)

    @property
    def name(self) -> str:
        """Where the model runs: its version folder, or NAME at a server."""
        return self.transport.name

    def __repr__(self) -> str:
        return f"Composer({self.name!r})"

    @_one_error
    def metadata(self) -> dict:
        """The model's `metadata` signature: model, representation, steps_per_quarter, window,
        max_steps, inputs (of `generate`), ..."""
        return self.transport.metadata()

    @_one_error
    def signatures(self) -> dict[str, dict[str, list[str]]]:
        """Each signature's input and output names."""
        return self.transport.signatures()

    @_one_error
    def status(self) -> list[dict]:
        """A served model's versions and states: [{"version": 1, "state": "AVAILABLE"}].

        Raises:
            ComposerError: the model is loaded in this process (there is no server to ask).
        """
        if not hasattr(self.transport, "status"):
            raise ComposerError(f"status: {self.name} is loaded in this process, not served")
        return self.transport.status()

    @_one_error
    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs any signature (e.g. `log_likelihood`) on a batch of NumPy inputs."""
        return self.transport.call(signature, inputs)

    @_one_error
    def generate(self, primer=None, steps: int = 500, *, temperature: float = 1.0,
                 top_k: int = 0, threshold: float = 0.0, seed: int = 0, key: str = "",
                 density: float | None = None, form: str = "",
                 primer_steps: int | None = None, primer_format: str | None = None,
                 accompany: bool = True) -> Composition:
        """Continues a primer: the `generate` signature, with the inputs the model lists.

        Args:
            primer: a MIDI / MusicXML / ABC / Humdrum path, its bytes, a `Piece` or a
                `Composition`; None: the start of the first Bach chorale in music21.
            steps: events (notes models), frames (piano roll) or bars (midinet).
            temperature: sampling temperature (> 0).
            top_k: notes models: sample among the k likeliest (0: all).
            threshold: piano-roll models: keys on above this probability (0: sample each).
            seed: the request's random seed; the same seed gives the same music.
            key: conditional models: compose in this key ("C", "F#", "Am", "C# minor").
            density: conditional models: note events per grid step, 0-1.
            form: wgan_gp: a letter per segment; equal letters repeat a segment ("ABCAB").
            primer_steps: how much of the primer to use, in steps (default: the window).
            primer_format: the format of primer bytes ("mid", "xml", "abc", ...; default:
                sniffed).
            accompany: midinet: the primer's chords sound under the melody.

        Returns:
            The primer and its continuation (wgan_gp: the composition alone).

        Raises:
            ComposerError: a bad primer or setting, or a request the model refused, with its
                one-line reason.
        """
        piece = _piece(primer, primer_format)
        meta = self.transport.metadata()
        primer_in = contract.primer_steps(piece, meta, primer_steps)
        inputs = contract.generate_inputs(primer_in, meta, steps, temperature, top_k, seed,
                                          threshold, key, density, form)
        outputs = self.transport.call("generate", inputs)
        result, primer_end = contract.to_piece(primer_in, outputs, meta, piece.qpm, accompany)
        return Composition(result, primer_end, inputs, outputs, meta, self.name)

    @_one_error
    def interpolate(self, a, b, points: int, *, temperature: float = 1.0,
                    threshold: float = 0.0, seed: int = 0, primer_steps: int | None = None,
                    primer_format: str | None = None) -> Composition:
        """A vae's blend from a's opening to b's, in `points` segments (`interpolate`).

        Args:
            a: where the blend starts: a path, bytes, `Piece` or `Composition`, as `generate`'s
                primer.
            b: where it ends.
            points: segments to decode, from a's code to b's.
            temperature: the decoded frames' sampling temperature (> 0).
            threshold: keys on above this probability (0: sample each).
            seed: the request's random seed.
            primer_steps: how much of a and b to encode, in steps (default: the window).
            primer_format: the format of bytes a and b.

        Returns:
            The blend alone (primer_end 0.0).

        Raises:
            ComposerError: the model has no `interpolate` signature, or a bad primer or setting.
        """
        first, last = _piece(a, primer_format), _piece(b, primer_format)
        meta = self.transport.metadata()
        a_in = contract.primer_steps(first, meta, primer_steps)
        b_in = contract.primer_steps(last, meta, primer_steps)
        inputs = contract.interpolate_inputs(a_in, b_in, meta, points, temperature, threshold,
                                             seed)
        outputs = self.transport.call("interpolate", inputs)
        result, primer_end = contract.to_piece(a_in[:0], outputs, meta, first.qpm)
        return Composition(result, primer_end, inputs, outputs, meta, self.name)

    @_one_error
    def refine(self, piece, refiner: Composer | str | None = None,
               primer_format: str | None = None) -> Composition:
        """The piece with velocities and steady durations from a refine model (`refine`).

        Args:
            piece: a `Composition` (its primer end, metadata and source are kept), a `Piece`,
                or a path or bytes as `generate`'s primer.
            refiner: the refine model: a Composer, or a name found where this model is (a
                SavedModel folder for a local model, a served model's name on its server);
                None: this composer's model.
            primer_format: the format of bytes `piece`.

        Raises:
            ComposerError: the refiner is not a refine model, or the piece cannot be read.
        """
        if refiner is None:
            refiner = self
        elif not isinstance(refiner, Composer):
            refiner = Composer(self.transport.sibling(refiner))
        notes = _piece(piece, primer_format)
        meta = refiner.transport.metadata()
        inputs, rows = contract.refine_inputs(notes, meta)
        outputs = refiner.transport.call("refine", inputs)
        refined = contract.refined(notes, rows, outputs, meta)
        if isinstance(piece, Composition):
            return dataclasses.replace(piece, piece=refined, inputs=inputs, outputs=outputs)
        return Composition(refined, 0.0, inputs, outputs, meta, refiner.name)


def _piece(primer, primer_format: str | None) -> Piece:
    return primer.piece if isinstance(primer, Composition) else \
        contract.read_primer(primer, primer_format)
