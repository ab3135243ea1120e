"""Callbacks beyond Keras's own: samples to TensorBoard and disk, learning rate, hparams."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import keras

from preprocessing import audio
from preprocessing.writers import write_midi


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate to the epoch logs, so CSVLogger and TensorBoard record it."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


class HParamsLogger(keras.callbacks.Callback):
    """Records the run's hyperparameters for TensorBoard's HParams dashboard."""

    def __init__(self, log_dir: Path, hparams: dict):
        super().__init__()
        self.log_dir, self.hparams = str(log_dir), hparams

    def on_train_begin(self, logs=None):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp_api

        with tf.summary.create_file_writer(self.log_dir).as_default():
            hp_api.hparams({k: v for k, v in self.hparams.items()
                            if isinstance(v, (bool, int, float, str))})


class SampleCallback(keras.callbacks.Callback):
    """Every `every` epochs and after the last one: continues the primer, writes the primer and
    its continuation as MIDI and a piano-roll PNG to `out_dir` and logs to TensorBoard the PNG
    (low notes at the bottom, time and pitch scales, the primer shaded), the first
    `AUDIO_SECONDS` of the continuation's audio (when FluidSynth is installed), and the
    continuation's figures of the quality floors (`evaluation.floors`): silent-step share,
    polyphony, notes per beat and their ratio to `density` (the held-out pieces' notes per
    beat), so that a model falling silent or scattering notes shows during training."""

    AUDIO_SECONDS = 10.0

    def __init__(self, family, spec, primer, out_dir: Path, log_dir: Path, *, vocab=None,
                 every: int = 1, steps: int = 64, seq_len: int = 64, seed: int = 0,
                 density: float | None = None):
        super().__init__()
        self.family, self.spec, self.primer, self.vocab = family, spec, primer, vocab
        self.density = density
        self.out_dir, self.log_dir = Path(out_dir), str(log_dir)
        self.every, self.steps, self.seq_len, self.seed = every, steps, seq_len, seed

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")  # a run shorter than `every` gets one too
        if (epoch + 1) % self.every and not last:
            return
        import tensorflow as tf

        from evaluation import metrics as mm
        from preprocessing.plot import save_roll_png

        steps = self.family.sample(self.model, self.spec, self.primer, self.steps,
                                   seed=self.seed + epoch, seq_len=self.seq_len)
        piece = self.family.to_piece(self.spec, steps, self.vocab)  # what the figures measure
        whole, primer_end = self.family.with_primer(self.spec, self.primer, steps, self.vocab)
        midi = write_midi(whole, self.out_dir / f"epoch_{epoch + 1:03d}.mid")
        spq = self.spec.steps_per_quarter
        png = save_roll_png(whole, midi.with_suffix(".png"), spq, primer_end,
                            title=f"epoch {epoch + 1}")
        with tf.summary.create_file_writer(self.log_dir).as_default(step=epoch + 1):
            tf.summary.image("sample/piano_roll", tf.image.decode_png(
                tf.io.read_file(str(png)), channels=3)[None])
            tf.summary.text("sample/midi", str(midi))
            tf.summary.scalar("sample/distinct_pitches", len(set(piece.pitch.tolist())))
            tf.summary.scalar("sample/notes", len(piece))
            tf.summary.scalar("sample/silent_step_share", mm.silent_step_share(piece, spq))
            tf.summary.scalar("sample/polyphony", mm.polyphony(piece, spq))
            tf.summary.scalar("sample/notes_per_beat", mm.note_density(piece))
            if self.density:
                tf.summary.scalar("sample/density_ratio", mm.note_density(piece) / self.density)
            try:
                wav = audio.render_wav(midi, midi.with_suffix(".wav"), sample_rate=16000)
                start = 16000 * primer_end * 60 / whole.qpm  # the continuation's
                tf.summary.audio("sample/audio",
                                 _wav_tensor(wav, start, 16000 * self.AUDIO_SECONDS), 16000,
                                 max_outputs=1)
            except (audio.AudioUnavailable, OSError):
                pass


def _wav_tensor(path: Path, start: float, most: float):
    """`most` samples of the WAV from sample `start`, mono, as [1, samples, 1]."""
    import tensorflow as tf

    decoded, _ = tf.audio.decode_wav(tf.io.read_file(str(path)))
    return tf.reduce_mean(decoded[int(start):int(start) + int(most)], axis=-1,
                          keepdims=True)[None]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that survives a kill or a full disk at any moment.

    Each backup is one folder, `backup/epoch-NNNN/` with the weights and the epoch they belong
    to, written beside and renamed into place, so weights and epoch are one atomic unit. The
    two newest are kept: a backup that cannot be read is named in one line and the one before
    it is used, or training starts over, saying so.
    """

    KEEP = 2

    def _folders(self) -> list[Path]:
        return sorted(Path(self.backup_dir).glob("epoch-[0-9]*"), reverse=True)

    def _save_model(self):
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        target = backup / f"epoch-{self._current_epoch:04d}"
        writing = backup / f".writing-{os.getpid()}"
        shutil.rmtree(writing, ignore_errors=True)
        writing.mkdir()
        self.model.save_weights(writing / "model.weights.h5", overwrite=True)
        (writing / "state.json").write_text(json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        shutil.rmtree(target, ignore_errors=True)
        os.rename(writing, target)
        for old in self._folders()[self.KEEP:]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_begin(self, logs=None):
        for stale in Path(self.backup_dir).glob(".writing-*"):  # a killed save's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        folders = self._folders()
        if not folders:
            return
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        # a file that fails halfway may have set some variables: put them back before going on
        variables = [*self.model.variables, *(optimizer.variables if optimizer else [])]
        fresh = [keras.ops.convert_to_numpy(v) for v in variables]
        for folder in folders:
            try:
                epoch = int(json.loads((folder / "state.json").read_text())["epoch"])
                self.model.load_weights(folder / "model.weights.h5")
            except Exception as exc:  # h5py, JSON and Keras each raise their own types
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                print(f"warning: backup {folder} is unreadable ({reason}); skipping it",
                      file=sys.stderr, flush=True)
                for variable, value in zip(variables, fresh):
                    variable.assign(value)
                continue
            self.model._initial_epoch = epoch
            print(f"resuming after epoch {epoch} from {folder}", file=sys.stderr, flush=True)
            return
        print("warning: no readable backup; training starts over from epoch 1",
              file=sys.stderr, flush=True)


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """Appends to the job's metrics.csv across resumed runs, one row per epoch: when a run starts
    at epoch E (after a resume), rows of epochs >= E, written before the kill, are dropped."""

    def __init__(self, filename: str):
        super().__init__(filename, append=True)
        self._first_epoch_seen = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch_seen or not os.path.exists(self.filename):
            return
        self._first_epoch_seen = True
        with open(self.filename, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) < epoch]
        if len(kept) < len(rows):
            with open(self.filename, "r+", newline="") as f:  # the logger appends after this
                csv.writer(f).writerows(kept)
                f.truncate()
