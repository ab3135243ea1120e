"""What every family's serving module shares: metadata, the common input checks, and
signatures whose float inputs must be finite.

A family declares its signatures by subclassing `Exported` (`trainer/models/<family>.py`);
this module never asks which family it holds.
"""

from __future__ import annotations

import functools
import inspect

import tensorflow as tf

from trainer import decoders
from trainer.data import DataSpec

# the signatures are written with TensorFlow's own control flow (tf.while_loop, tf.where), so
# AutoGraph has nothing to convert in them; left on, it re-parsed their source and that of every
# function they call, most of an export's time (bench/export_speed.py)
AUTOGRAPH = False
DEFAULT_MAX_STEPS = 4096
MAX_TEMPERATURE = 10.0  # logits / 10 are near uniform already: more is noise, not a choice


def spec(shape, dtype, name) -> tf.TensorSpec:
    return tf.TensorSpec(shape, dtype, name=name)


def per_row(dtype, name) -> tf.TensorSpec:
    """An input with one value per request row."""
    return spec([None], dtype, name)


def signature(method, input_signature):
    """`tf.function(method)` whose float inputs must be finite: a NaN or inf in a primer, a
    temperature or a threshold is an InvalidArgument naming the input, not noise."""
    names = list(inspect.signature(method).parameters)

    @functools.wraps(method)
    def checked(*args):
        checks = [tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(value)), True,
                                            message=f"{name}: every value must be finite")
                  for name, value in zip(names, args)
                  if value is not None and value.dtype.is_floating]
        with tf.control_dependencies(checks):  # defaults (key=None) pass through as they are
            return method(*[value if value is None else tf.identity(value) for value in args])

    return tf.function(checked, input_signature=input_signature, autograph=AUTOGRAPH)


def assert_in(values, low, high, name, low_open=False):
    """InvalidArgument naming `name` unless every value is in [low, high] ((low, high] with
    `low_open`); NaN fails every comparison, so it fails here too."""
    above = values > low if low_open else values >= low
    ok = tf.reduce_all(above & (values <= high))
    # no brackets in the words: clients find the message between TensorFlow's own brackets
    return tf.debugging.assert_equal(ok, True, message=(
        f"{name} must be {'>' if low_open else '>='} {low:g} and <= {high:g}"))


def keep_rows(frames, num_steps):
    """Zeros past each row's own num_steps (the loop ran max(num_steps) steps for all)."""
    keep = tf.range(tf.shape(frames)[1])[None] < num_steps[:, None]
    shape = tf.concat([tf.shape(keep), tf.ones([tf.rank(frames) - 2], tf.int32)], 0)
    return frames * tf.cast(tf.reshape(keep, shape), frames.dtype)


class Exported(tf.Module):
    """The serving module of one trained model; a family subclasses it.

    A subclass sets `main_specs()` (the inputs of its main signature, listed in metadata for
    clients) and `family_signatures()` (name → `signature(...)`); `metadata` is added to them.
    Every input has a leading batch dimension, so TF Serving can batch requests.
    """

    def __init__(self, model, family: str, spec: DataSpec, window: int, vocab=None,
                 max_steps: int = DEFAULT_MAX_STEPS, conditions=None):
        super().__init__()
        decoders.disable_cudnn(model)
        self.model, self.family, self.spec = model, family, spec
        self.window, self.max_steps = window, max_steps
        self.conditional = False

    def main_specs(self) -> list[tf.TensorSpec]:
        raise NotImplementedError

    def family_signatures(self) -> dict:
        raise NotImplementedError

    def metadata_values(self) -> dict:
        s = self.spec
        return {"model": self.family, "representation": s.representation,
                "steps_per_quarter": s.steps_per_quarter, "encoding": s.encoding,
                "vocab_size": s.vocab_size, "max_duration": s.max_duration,
                "max_shift": s.max_shift, "chords": s.chords, "keys": s.keys,
                "window": self.window,
                "max_steps": self.max_steps, "conditional": int(self.conditional),
                "inputs": ",".join(s.name for s in self.main_specs()),
                "signatures": ",".join(sorted([*self.family_signatures(), "metadata"]))}

    def _metadata(self, request):
        """One row of metadata per request row: TF Serving batches every signature, and a
        batch needs a batch dimension on every input and output."""
        rows = tf.shape(request)[:1]
        return {k: tf.fill(rows, tf.constant(v)) for k, v in self.metadata_values().items()}

    def signatures(self) -> dict:
        """Every signature to save: the family's and `metadata`."""
        return {**self.family_signatures(),
                "metadata": tf.function(self._metadata, autograph=AUTOGRAPH,
                                        input_signature=[per_row(tf.int32, "request")])}

    def check(self, batch, num_steps, name="num_steps", *, temperature=None, threshold=None,
              seed=None) -> list:
        """The checks every generating signature shares: one value per row, counts in range,
        temperature and threshold in range (1e30 would sample noise)."""
        rows = {name: num_steps, "temperature": temperature, "threshold": threshold,
                "seed": seed}
        checks = [tf.debugging.assert_equal(tf.shape(value)[0], batch,
                                            message=f"{key}: one value per row")
                  for key, value in rows.items() if value is not None]
        checks += [tf.debugging.assert_greater(num_steps, 0, message=f"{name} must be >= 1"),
                   tf.debugging.assert_less_equal(
                       num_steps, self.max_steps, message=f"{name} must be <= {self.max_steps}")]
        if temperature is not None:
            checks.append(assert_in(temperature, 0.0, MAX_TEMPERATURE, "temperature",
                                    low_open=True))
        if threshold is not None:
            checks.append(assert_in(threshold, 0.0, 1.0, "threshold"))
        return checks

    def roll_specs(self, *names) -> list[tf.TensorSpec]:
        return [spec([None, None, self.spec.keys], tf.float32, n) for n in names]

    def roll_generate_specs(self) -> list[tf.TensorSpec]:
        """`generate` inputs of piano-roll models: primer, num_steps, temperature, threshold,
        seed."""
        return [*self.roll_specs("primer"), per_row(tf.int32, "num_steps"),
                per_row(tf.float32, "temperature"), per_row(tf.float32, "threshold"),
                per_row(tf.int64, "seed")]

    @staticmethod
    def roll_nll(target, logits) -> dict:
        nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        return {"nll": tf.reduce_sum(nll, -1), "probs": tf.sigmoid(logits)}
