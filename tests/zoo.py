"""The tiny models the tests share: every family's tiny settings, defined once, and the
session's zoo of models trained on a small corpus and exported once, on first use.

A family added to `trainer.models.MODELS` adds its line to `TINY`; `test_trainer` checks that
every registered family has one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import shutil
import warnings
import zlib
from pathlib import Path

import keras
import tensorflow as tf

from preprocessing.dataset import Settings
from preprocessing.notes import Vocabulary, event_string
from tests.conftest import two_voices, write_midi_file
from trainer import conditions, export
from trainer import data as data_lib
from trainer.config import Config
from trainer.export.versions import write_models_config
from trainer.models import MODELS
from trainer.models.common import input_name

SEQ_LEN = 8  # the zoo's window: primers are 8 steps, so primer + 12 steps roll the bilstm window
ATTENTION_WIDTH = 4  # < SEQ_LEN + 12: the attention window rolls

# tiny sizes of every family, so a build and a training step take a second or so; the next-step
# families' high learning rate moves the logits well away from uniform in two epochs
TINY = {
    # unconditional, as the other next-step families here (`zoo(..., condition=True)` and
    # test_conditional cover conditions)
    "lstm": dict(units=16, layers=1, dense=16, condition=False, learning_rate=1e-2),
    "bilstm": dict(units=16, layers=1, dense=16, learning_rate=1e-2),
    "attention_lstm": dict(units=16, dense=16, attention_units=8, condition=False,
                           attention_width=ATTENTION_WIDTH, learning_rate=1e-2),
    "seq2seq": dict(units=16, layers=1, dense=16, nade_hidden=8, learning_rate=1e-2),
    "midinet": dict(noise=8, filters=8),
    "vae": dict(latent=4, units=8, nade_hidden=6),
    "wgan_gp": dict(noise=4, filters=8, critic_steps=1, xla=False),
    "refine": dict(units=8, layers=1, dense=8),
    "rnn_nade": dict(layers=1, units=16, nade_hidden=8, dropout=0.0, learning_rate=1e-2),
}

# the zoo's midinet is wider: smaller ones barely hear their noise
ZOO_HPARAMS = {**TINY, "midinet": dict(noise=100, filters=64)}


def hparams_flag(name: str, **more) -> str:
    """TINY[name] (updated with `more`) as a `--hparams` value."""
    return ",".join(f"{k}={v}" for k, v in {**TINY[name], **more}.items())


def run_main(main, argv) -> tuple[int, str, str]:
    """A CLI's `main(argv)` in this process: (exit status, stdout, stderr); an argparse error is
    exit status 2 as from the shell."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def case_id(name: str, rep: str, encoding: str = "active", **hparams) -> str:
    """`lstm-notes`, `lstm-pianoroll-onset-sustain`, `lstm-notes-condition-True`."""
    return "-".join([name, rep, *([] if encoding == "active" else [encoding]),
                     *(f"{k}-{v}" for k, v in sorted(hparams.items()))])


@dataclasses.dataclass
class Trained:
    """A trained model, its data and its exported, loaded SavedModel."""

    name: str
    rep: str
    encoding: str
    hparams: dict  # what it changes of ZOO_HPARAMS[name]
    spec: data_lib.DataSpec
    vocab: Vocabulary | None
    model: keras.Model
    x: object  # the training inputs
    path: Path  # the version folder
    loaded: object

    @property
    def family(self):
        return MODELS[self.name]

    @property
    def id(self) -> str:
        return case_id(self.name, self.rep, self.encoding, **self.hparams)

    def primer(self, i: int, length: int = SEQ_LEN):
        """The i-th primer of the training data: event strings, frames [L, keys], chords [4, 13]."""
        if self.rep == "bars":
            return self.x["chord"][4 * i:4 * i + 4]
        steps = self.x
        if isinstance(steps, dict):  # a conditional model's, or seq2seq's encoder and decoder
            steps = steps[input_name(self.spec)] if "condition" in steps else steps["encoder"]
        if self.rep == "notes":
            return [event_string(e) for e in self.vocab.decode(steps[i][:length])]
        return steps[i][:length]


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on the file `path` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Zoo:
    """Six two-voice MIDI pieces, their datasets (every piece in the training split) and models
    trained on them for two epochs, exported as `export_dir/ID/1` and loaded back; each dataset
    and model is built once, on first use, and kept for the session.

    `shared` is a folder every pytest-xdist worker of the session sees: the first worker to ask
    for a dataset or a model builds it there (under a lock), the others wait for it and reuse
    it: the same files, the same trained weights (loaded into a model built as the trainer
    built it) and a copy of the same SavedModel, so a model is trained and exported once per
    session rather than once per worker."""

    def __init__(self, root: Path, shared: Path | None = None):
        self.root = root
        self.shared = shared or root / "shared"
        self.corpus = self.shared / "corpus"
        with _locked(self.shared / "corpus.lock"):
            if not (self.shared / "corpus.done").exists():
                for k in range(6):
                    write_midi_file(self.corpus / f"piece{k}.mid", two_voices(100 + k))
                (self.shared / "corpus.done").touch()
        self.export_dir = root / "exports"
        self._datasets: dict = {}
        self._models: dict = {}

    def dataset(self, rep: str, encoding: str = "active") -> tuple[Path, data_lib.DataSpec]:
        key = rep, encoding
        if key not in self._datasets:
            folder = self.shared / f"data-{rep}-{encoding}"
            with _locked(self.shared / f"data-{rep}-{encoding}.lock"):
                if not (self.shared / f"data-{rep}-{encoding}.done").exists():
                    _, summary = data_lib.prepare(
                        [str(self.corpus)], folder,
                        Settings(representation=rep, encoding=encoding, validation=0.0,
                                 test=0.0),
                        progress=False)
                    assert summary["pieces"]["train"] == 6
                    (self.shared / f"data-{rep}-{encoding}.done").touch()
            self._datasets[key] = folder, data_lib.spec_of(folder)
        return self._datasets[key]

    def __call__(self, name: str, rep: str, encoding: str = "active", **hparams) -> Trained:
        """The family `name` trained on `rep` data; `hparams` change its ZOO_HPARAMS (e.g.
        `condition=True`) and make it a model of its own."""
        key = name, rep, encoding, tuple(sorted(hparams.items()))
        if key not in self._models:
            folder, spec = self.dataset(rep, encoding)
            family = MODELS[name]
            ident = case_id(name, rep, encoding, **hparams)
            config = Config(model=name, representation=rep, encoding=encoding, seq_len=SEQ_LEN,
                            hparams={**ZOO_HPARAMS[name], **hparams})
            build = self.shared / "models" / ident
            weights = build / "model.weights.h5"
            keras.utils.set_random_seed(zlib.crc32(ident.encode()) % 1000)
            x, y = family.arrays(folder, "train", spec, config)
            model = family.build(spec, config.hparams, SEQ_LEN)
            vocab = Vocabulary.load(folder / "vocab.json") if rep == "notes" else None
            with _locked(self.shared / "models" / f"{ident}.lock"):
                if not (build / "done").exists():
                    build.mkdir(parents=True, exist_ok=True)
                    # eagerly: two epochs of six pieces take less time than tracing `fit`
                    # (about 2 s less a model, summed over the families), but for the vae,
                    # whose 24 eager steps take twice its traced fit
                    model.run_eagerly = name != "vae"
                    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
                    model.run_eagerly = False
                    model.save_weights(weights)
                    export.export(model, name, spec, SEQ_LEN, build / "exports", name=ident,
                                  vocab=vocab, conditions=conditions.of_inputs(x))
                    (build / "done").touch()
                else:  # trained by another worker: its weights (not its optimizer's)
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", "Skipping variable loading for "
                                                "optimizer", UserWarning)
                        model.load_weights(weights)
            path = self.export_dir / ident / "1"
            shutil.copytree(build / "exports" / ident / "1", path)
            write_models_config(self.export_dir)
            self._models[key] = Trained(name, rep, encoding, dict(hparams), spec, vocab, model,
                                        x, path, tf.saved_model.load(str(path)))
        return self._models[key]
