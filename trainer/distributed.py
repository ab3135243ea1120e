"""`--strategy multiworker`: a custom training loop under MultiWorkerMirroredStrategy.

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras#20585), so this loop
distributes the dataset, runs the step with `strategy.run` and averages the loss over the global
batch. TF_CONFIG names the cluster; the chief (worker 0) writes the job folder, the other workers
write only to `JOB/.worker-N`.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from preprocessing.piece import InputError
from trainer import data as data_lib
from trainer import losses
from trainer.config import Config
from trainer.data import DataSpec
from trainer.models import MODELS


@functools.cache
def cluster_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The job's strategy, made once. Make it before TensorFlow runs any op (a conditional
    model's data does): collective ops can only be configured at program startup."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def worker_index() -> int:
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return int(task.get("index", 0)) if task.get("type", "worker") in ("worker", "chief") else -1


def job_dir_for(job: Path) -> Path:
    """The chief writes the job folder; every other worker its own corner of it."""
    index = worker_index()
    return job if index == 0 else job / f".worker-{index}"


def per_example_loss(hp: dict, y, logits, weights):
    """Loss per example, averaged over time (and keys), summed over event fields; a step of
    weight 0 (padding) adds nothing, as in `fit` with sample weights."""
    def mean_but_batch(t):
        return tf.reduce_mean(tf.reshape(t * weights, [tf.shape(t)[0], -1]), axis=1)

    if isinstance(logits, dict):
        return tf.add_n([mean_but_batch(keras.losses.sparse_categorical_crossentropy(
            y[f], logits[f], from_logits=True)) for f in logits])
    loss = losses.roll_loss(hp["loss"], hp["alpha"], hp["gamma"])
    return mean_but_batch(loss.call(tf.cast(y, logits.dtype), logits))


def fit(config: Config, spec: DataSpec, job: Path, train) -> tuple[dict, keras.Model | None]:
    """Trains with the custom distributed loop; the chief saves model.keras and metrics.csv.

    Returns:
        (the last epoch's metrics, the trained model on the chief; None on the other workers).
    """
    family = MODELS[config.model]  # Config has checked that it has a plain loss
    strategy = cluster_strategy()
    x, y = train
    y, weights = data_lib.sample_weights(y)
    if weights is None:  # a weight per target step: [N, T] or, seq-to-one, [N]
        shape = y["token"].shape if isinstance(y, dict) else y.shape[:-1]
        weights = np.ones(shape, np.float32)
    elif isinstance(weights, dict):  # the same for every field
        weights = weights["token"]
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps = data_lib.rows(x) // global_batch
    if steps == 0:
        raise InputError(f"too little data for a global batch of {global_batch} windows")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = (tf.data.Dataset.from_tensor_slices((x, y, weights))
          .shuffle(data_lib.rows(x), seed=config.seed, reshuffle_each_iteration=True)
          .batch(global_batch, drop_remainder=True).with_options(options))
    with strategy.scope():
        model = family.build(spec, config.hparams, config.seq_len)

    def step(inputs, targets, weights):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = tf.nn.compute_average_loss(
                per_example_loss(config.hparams, targets, logits, weights),
                global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(batch):
        per_replica = strategy.run(step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    chief = worker_index() == 0
    writer = tf.summary.create_file_writer(str(job / "logs" / "train")) if chief else None
    rows = []
    for epoch in range(config.epochs):
        total = 0.0
        for batch in strategy.experimental_distribute_dataset(ds):
            total += float(train_step(batch))
        rows.append({"epoch": epoch, "loss": total / steps,
                     "workers": strategy.cluster_resolver.cluster_spec().num_tasks("worker")})
        if writer is not None:
            with writer.as_default(step=epoch):
                tf.summary.scalar("epoch_loss", rows[-1]["loss"])
        print(json.dumps(rows[-1]), flush=True)
    if chief:
        with open(job / "metrics.csv", "w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows(rows)
    model.save(job / "model.keras")
    if not chief:
        return {"loss": rows[-1]["loss"]}, None  # the chief exports
    return {"loss": rows[-1]["loss"]}, model
