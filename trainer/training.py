"""A job's fit loop: data, strategy, callbacks, and the trained model saved in the job folder."""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from preprocessing import dataset
from preprocessing.piece import InputError
from trainer import callbacks as composer_callbacks
from trainer import data as data_lib
from trainer.config import Config
from trainer.models import MODELS


def strategy_for(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def arrays(config: Config, spec: data_lib.DataSpec, folder: Path):
    """(train, validation) arrays; validation is None for GANs and when no piece is held out.

    Raises:
        InputError: the training split yields no window.
    """
    family = MODELS[config.model]
    splits = dataset.load_meta(folder)["splits"]
    if not splits["train"]:
        held = len(splits["validation"]) + len(splits["test"])
        raise InputError(f"no training piece: the split (by content) holds all {held} pieces "
                         "out for validation and test; add more files")
    train = family.arrays(folder, "train", spec, config)
    if family.is_gan or not splits["validation"]:
        return train, None
    try:
        return train, family.arrays(folder, "validation", spec, config)
    except InputError:  # held-out pieces too short for a window
        return train, None


def reference_density(family, spec: data_lib.DataSpec, folder: Path, vocab=None) -> float | None:
    """Notes per beat of the held-out (else the training) pieces as the family writes music:
    what the floors hold a sample's density against; None without an encoded data folder."""
    from evaluation import metrics as mm

    if not (folder / "meta.json").is_file():
        return None
    splits = dataset.load_meta(folder)["splits"]
    split = "validation" if splits["validation"] else "train"
    pieces = [p for p in family.split_pieces(folder, split, spec, vocab) if len(p)]
    return float(np.mean([mm.note_density(p) for p in pieces])) if pieces else None


def note_reference(family, spec: data_lib.DataSpec, folder: Path, vocab=None) -> dict | None:
    """The note pitches and durations of up to 64 training items (transposed variants
    included) as the family writes music (`evaluation.metrics.note_distributions`): what a
    server measures the drift of the pieces it serves against. None for a family that does
    not compose (refine)."""
    from evaluation import metrics as mm

    if not family.generates:
        return None
    return mm.note_distributions(family.split_pieces(folder, "train", spec, vocab))


def fit(config: Config, spec: data_lib.DataSpec, job: Path, train, val=None,
        vocab=None) -> tuple[dict, keras.Model]:
    """Trains `config.model` on (inputs, targets) arrays; writes everything under `job`.

    Returns:
        (the last epoch's metrics, the trained model).
    """
    family = MODELS[config.model]
    x, y = train
    train_ds = data_lib.to_dataset(x, y, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = data_lib.to_dataset(*val, config.batch_size, shuffle=False, seed=0) if val else None
    with strategy_for(config.strategy).scope():
        model = family.build(spec, config.hparams, config.seq_len)
    monitor = "g_loss" if family.is_gan else \
        f"val_{family.monitor}" if val_ds is not None else family.monitor
    logs = job / "logs"
    cbs = [
        *([] if family.is_gan else [composer_callbacks.LearningRateLogger()]),
        *family.callbacks(config.hparams),  # before the CSV logger, which writes what they log
        # the row before the backup: an epoch killed between the two is run again, and its
        # earlier row dropped
        composer_callbacks.ResumableCSVLogger(str(job / "metrics.csv")),
        composer_callbacks.AtomicBackupAndRestore(str(job / "backup")),
        keras.callbacks.ModelCheckpoint(str(job / "checkpoints" / "best.keras"), monitor=monitor,
                                        mode="min", save_best_only=not family.is_gan),
        *([] if family.is_gan else [
            keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode="min", factor=0.5,
                                              patience=max(1, config.patience // 2))]),
        keras.callbacks.TensorBoard(str(logs), histogram_freq=1, update_freq="epoch"),
        composer_callbacks.HParamsLogger(logs, {"model": config.model, **config.hparams,
                                                "representation": config.representation,
                                                "encoding": config.encoding,
                                                "steps_per_quarter": config.steps_per_quarter,
                                                "augment": config.augment,
                                                "seq_len": config.seq_len,
                                                "batch_size": config.batch_size}),
    ]
    if config.sample_every and family.generates:
        cbs.append(composer_callbacks.SampleCallback(
            family, spec, family.primer((val or (x, y))[0]), job / "samples", logs, vocab=vocab,
            every=config.sample_every, steps=config.sample_steps, seq_len=config.seq_len,
            seed=config.seed,  # the data folder that trainer.task links into the job
            density=reference_density(family, spec, job / "data", vocab)))
    (job / "checkpoints").mkdir(parents=True, exist_ok=True)
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=cbs,
                        shuffle=False,  # the dataset shuffles itself
                        verbose=1 if sys.stdout.isatty() else 2)  # a bar per batch on a terminal
    model.save(job / "model.keras")
    return {k: float(v[-1]) for k, v in history.history.items()}, model
