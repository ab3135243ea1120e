"""The fit loop of a job: data, strategy, callbacks, and the trained model saved in the job folder."""

from __future__ import annotations

from pathlib import Path

import keras

from preprocessing import dataset
from trainer import callbacks as composer_callbacks
from trainer import data as data_lib
from trainer.config import Config
from trainer.models import MODELS


def strategy_for(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def fit(config: Config, spec: data_lib.DataSpec, folder: Path, job: Path, vocab=None) -> dict:
    """Trains `config.model` on the encoded data in `folder`; writes everything under `job`."""
    if config.strategy == "multiworker":
        from trainer import distributed

        return distributed.fit(config, spec, folder, job)
    family = MODELS[config.model]
    x, y = family.arrays(folder, "train", spec, config)
    # a GAN has no validation loss; the others validate on held-out pieces when there are any
    has_validation = not family.is_gan and bool(dataset.load_meta(folder)["splits"]["validation"])
    val = family.arrays(folder, "validation", spec, config) if has_validation else None
    train_ds = data_lib.to_dataset(x, y, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = data_lib.to_dataset(*val, config.batch_size, shuffle=False, seed=0) if val else None
    with strategy_for(config.strategy).scope():
        model = family.build(spec, config.hparams, config.seq_len)
    monitor = "g_loss" if family.is_gan else "val_loss" if val_ds is not None else "loss"
    logs = job / "logs"
    cbs = [
        keras.callbacks.BackupAndRestore(str(job / "backup")),
        keras.callbacks.ModelCheckpoint(str(job / "checkpoints" / "best.keras"), monitor=monitor,
                                        mode="min", save_best_only=not family.is_gan),
        *([] if family.is_gan else [
            keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                              patience=max(1, config.patience // 2)),
            composer_callbacks.LearningRateLogger()]),
        *family.callbacks(config.hparams),
        keras.callbacks.CSVLogger(str(job / "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(str(logs), histogram_freq=1, update_freq="epoch"),
        composer_callbacks.HParamsLogger(logs, {"model": config.model, **config.hparams,
                                                "representation": config.representation,
                                                "seq_len": config.seq_len,
                                                "batch_size": config.batch_size}),
    ]
    if config.sample_every:
        cbs.append(composer_callbacks.SampleCallback(
            family, spec, family.primer((val or (x, y))[0]), job / "samples", logs, vocab=vocab,
            every=config.sample_every, steps=config.sample_steps, seq_len=config.seq_len,
            seed=config.seed))
    (job / "checkpoints").mkdir(parents=True, exist_ok=True)
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=cbs,
                        verbose=2)
    model.save(job / "model.keras")
    return {k: float(v[-1]) for k, v in history.history.items()}
