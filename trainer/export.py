"""SavedModel export: every signature in one place, atomic versions, TF Serving's models.config.

Signatures (every input has a leading batch dimension, so TF Serving can batch requests):
- `serving_default`: the next-step distribution for a batch of contexts (vae: a context's
  latent code and reconstruction; wgan_gp: the generator's output for given noise).
- `generate`: a whole piece per row in one call (the sampling loop runs in the graph).
    notes:     primer [B, L] event strings ("C4.E4.G4|4|2", "" pads), num_steps [B],
               temperature [B], top_k [B], seed [B] → tokens [B, n] (event strings, "" past a
               row's num_steps)
    pianoroll: primer [B, L, keys], num_steps, temperature, threshold (0: sample), seed
               → frames [B, n, keys]
    bars:      chords [B, C, 13], num_bars [B], seed [B] → bars [B, n, 16, 128]
    wgan_gp:   num_steps, form [B] ("ABCAB": a letter per segment), temperature, threshold,
               seed → frames
    temperature divides the logits of next-step models; for wgan_gp it scales the noise, for
    vae both (the latent walk's noise and the frames' logits).
    conditional lstm / attention_lstm: also key [B] ("C", "F#m"; "" keeps the primer's) and
               density [B] (< 0 keeps the primer's) → also condition [B, 15]
- `metadata`: request [B] (any values) → what a client needs to convert MIDI, one row per
  request row: model, representation, grid, encoding, vocabulary size, window, max_steps,
  conditional, inputs (the `generate` inputs' names, comma-joined).
- `interpolate` (vae): a [B, L, keys], b [B, L', keys], num_points, temperature, threshold,
  seed → frames [B, n * segment, keys], decoded from latents blended from a's code to b's.
- `refine` (also `serving_default`, refine nets): pitch, onset, duration [B, N] int32 →
  velocity, duration [B, N].
- `log_likelihood` (all but the GANs and refine): teacher-forced NLL in nats of every step
  after the first (vae: of every frame, reconstruction at the posterior mean plus the KL).
    notes:     events [B, L] → nll, token_nll, duration_nll, shift_nll [B, L-1]; counted
               (1 where the target counts) and oov (1 where the target token is out of
               vocabulary: left out of the NLL, reported apart)
    pianoroll: frames [B, L, keys] → nll [B, L-1] (sum over keys), probs [B, L-1, keys]
    seq2seq:   encoder [B, T, keys], target [B, T', keys] → nll [B, T'], probs
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from preprocessing import performance
from preprocessing.transforms import KEY_INDEX
from trainer import conditions as cond_lib
from trainer import decoders, rng
from trainer.data import NOTE_FIELDS, DataSpec
from trainer.models.common import input_name
from trainer.models.vae import kl_per_dimension

DEFAULT_MAX_STEPS = 4096
MAX_TEMPERATURE = 10.0  # logits / 10 are near uniform already: more is noise, not a choice


def _assert_in(values, low, high, name, low_open=False):
    """InvalidArgument naming `name` unless every value is finite and in [low, high]
    ((low, high] with `low_open`); NaN fails every comparison, so it fails here too."""
    above = values > low if low_open else values >= low
    ok = tf.reduce_all(above & (values <= high))
    return tf.debugging.assert_equal(ok, True, message=(
        f"{name} must be a number in {'(' if low_open else '['}{low:g}, {high:g}]"))


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def _signature(method, input_signature):
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

    return tf.function(checked, input_signature=input_signature)


class Exported(tf.Module):
    """The serving module of one trained model."""

    def __init__(self, model, family: str, spec: DataSpec, window: int, vocab=None,
                 max_steps: int = DEFAULT_MAX_STEPS, conditions=None):
        super().__init__()
        decoders.disable_cudnn(model)
        self.model, self.family, self.spec = model, family, spec
        self.window, self.max_steps = window, max_steps
        self.conditional = is_conditional(model)
        if self.conditional:  # the key profiles come from the training windows' conditions
            self.profiles = cond_lib.key_profiles(
                conditions if conditions is not None else np.zeros((0, cond_lib.SIZE)))
            self.keys = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                list(KEY_INDEX), list(KEY_INDEX.values())), -2)
            self.pitches = cond_lib.pitch_table()
        if family in ("lstm", "attention_lstm"):
            self.decoder = decoders.Recurrent(model, spec)
        elif family == "bilstm":
            self.decoder = decoders.Window(model, spec, window)
        if spec.representation == "notes":
            tokens = tf.constant(list(vocab.tokens))
            self.tokens = tokens
            self.lookup = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tokens, tf.range(len(vocab.tokens))), 0)

    def metadata_values(self) -> dict:
        s = self.spec
        return {"model": self.family, "representation": s.representation,
                "steps_per_quarter": s.steps_per_quarter, "encoding": s.encoding,
                "vocab_size": s.vocab_size, "max_duration": s.max_duration,
                "max_shift": s.max_shift, "keys": s.keys, "window": self.window,
                "max_steps": self.max_steps, "conditional": int(self.conditional),
                "inputs": ",".join(spec.name for spec in self._main_specs())}

    def _metadata(self, request):
        """One row of metadata per request row: TF Serving batches every signature, and a
        batch needs a batch dimension on every input and output."""
        rows = tf.shape(request)[:1]
        return {k: tf.fill(rows, tf.constant(v)) for k, v in self.metadata_values().items()}

    def _main_specs(self) -> list:
        """The inputs of the model's main signature, `generate` (`refine` for refine models),
        also listed in `metadata` for clients."""
        rep, keys = self.spec.representation, self.spec.keys
        batch = [_spec([None], tf.int32, "num_steps"), _spec([None], tf.float32, "temperature")]
        if rep == "performance":
            return [_spec([None, None], tf.int32, name) for name in performance.FIELDS[:3]]
        if rep == "notes":
            specs = [_spec([None, None], tf.string, "primer"), *batch,
                     _spec([None], tf.int32, "top_k"), _spec([None], tf.int64, "seed")]
        elif self.family == "wgan_gp":
            specs = [batch[0], _spec([None], tf.string, "form"), batch[1],
                     _spec([None], tf.float32, "threshold"), _spec([None], tf.int64, "seed")]
        elif rep == "pianoroll":
            specs = [_spec([None, None, keys], tf.float32, "primer"), *batch,
                     _spec([None], tf.float32, "threshold"), _spec([None], tf.int64, "seed")]
        else:
            specs = [_spec([None, None, 13], tf.float32, "chords"),
                     _spec([None], tf.int32, "num_bars"), _spec([None], tf.int64, "seed")]
        if self.conditional:
            specs += [_spec([None], tf.string, "key"), _spec([None], tf.float32, "density")]
        return specs

    def _roll_specs(self, *names):
        return [_spec([None, None, self.spec.keys], tf.float32, n) for n in names]

    def signatures(self) -> dict:
        rep, keys = self.spec.representation, self.spec.keys
        meta = _signature(self._metadata, input_signature=[_spec([None], tf.int32, "request")])
        if rep == "performance":
            refine = _signature(self._refine, input_signature=self._main_specs())
            return {"serving_default": refine, "refine": refine, "metadata": meta}
        method = self._generate_gan if self.family == "wgan_gp" else {
            "notes": self._generate_notes, "pianoroll": self._generate_roll,
            "bars": self._generate_bars}[rep]
        generate = _signature(method, input_signature=self._main_specs())
        if rep == "notes":
            default = _signature(self._next_notes, input_signature=[
                _spec([None, None], tf.string, "context")])
        elif rep == "pianoroll":
            default = _signature(self._next_roll, input_signature=[
                _spec([None, None, keys], tf.float32, "context")])
        else:
            default = _signature(self._next_bar, input_signature=[
                _spec([None, 13], tf.float32, "chord"),
                _spec([None, 16, 128], tf.float32, "previous"), _spec([None], tf.int64, "seed")])
        signatures = {"serving_default": default, "generate": generate, "metadata": meta}
        if self.family == "vae":
            signatures["serving_default"] = _signature(self._encode,
                                                        input_signature=self._roll_specs("context"))
            signatures["interpolate"] = _signature(self._interpolate, input_signature=[
                *self._roll_specs("a", "b"), _spec([None], tf.int32, "num_points"),
                _spec([None], tf.float32, "temperature"), _spec([None], tf.float32, "threshold"),
                _spec([None], tf.int64, "seed")])
            signatures["log_likelihood"] = _signature(self._likelihood_vae,
                                                       input_signature=self._roll_specs("frames"))
        elif self.family == "wgan_gp":
            signatures["serving_default"] = _signature(self._from_noise, input_signature=[
                _spec([None, self.model.noise], tf.float32, "noise")])
        elif rep == "notes":
            signatures["log_likelihood"] = _signature(self._likelihood_notes, input_signature=[
                _spec([None, None], tf.string, "events")])
        elif self.family == "seq2seq":
            signatures["log_likelihood"] = _signature(self._likelihood_seq2seq, input_signature=[
                _spec([None, None, keys], tf.float32, "encoder"),
                _spec([None, None, keys], tf.float32, "target")])
        elif rep == "pianoroll":
            signatures["log_likelihood"] = _signature(self._likelihood_roll, input_signature=[
                _spec([None, None, keys], tf.float32, "frames")])
        return signatures

    # --- checks shared by the signatures: InvalidArgument with a message naming the input ---

    def _check(self, batch, num_steps, name="num_steps", *, temperature=None, threshold=None,
               seed=None):
        """The checks every generating signature shares: one value per row, counts in range,
        temperature and threshold in range (1e30 would sample noise)."""
        per_row = {name: num_steps, "temperature": temperature, "threshold": threshold,
                   "seed": seed}
        checks = [tf.debugging.assert_equal(tf.shape(value)[0], batch,
                                            message=f"{key}: one value per row")
                  for key, value in per_row.items() if value is not None]
        checks += [tf.debugging.assert_greater(num_steps, 0, message=f"{name} must be >= 1"),
                   tf.debugging.assert_less_equal(
                       num_steps, self.max_steps, message=f"{name} must be <= {self.max_steps}")]
        if temperature is not None:
            checks.append(_assert_in(temperature, 0.0, MAX_TEMPERATURE, "temperature",
                                     low_open=True))
        if threshold is not None:
            checks.append(_assert_in(threshold, 0.0, 1.0, "threshold"))
        return checks

    # --- conditions (conditional models) ---

    def _condition(self, steps, valid=None, strings=None):
        """The condition vector of each row's primer: events [B, L, 3] with their strings
        [B, L] (where `valid`), or frames."""
        if self.spec.representation == "notes":
            tokens = tf.strings.regex_replace(strings, r"\|.*", "")
            return cond_lib.from_tokens(tokens, steps[..., 2], valid, self.pitches)
        return cond_lib.from_frames(steps)

    def _conditioned(self, condition, key, density):
        """`condition` with the request's key ("" keeps the primer's) and density (< 0 keeps
        it) put in, after checking them."""
        batch = tf.shape(condition)[0]
        index = tf.where(key == "", -1, self.keys.lookup(key))
        with tf.control_dependencies([
                tf.debugging.assert_equal(tf.shape(key)[0], batch,
                                          message="key: one value per row"),
                tf.debugging.assert_equal(tf.shape(density)[0], batch,
                                          message="density: one value per row"),
                tf.debugging.assert_greater_equal(index, -1, message=(
                    "key: unknown; use C, C#, Db, ..., B for major and Cm, ..., Bm for minor")),
                tf.debugging.assert_less_equal(density, 1.0, message=(
                    "density must be <= 1 (note events per grid step; < 0 keeps the primer "
                    "density)"))]):
            return cond_lib.override(condition, index, density, self.profiles)

    def _model_inputs(self, steps, condition):
        if not self.conditional:
            return steps
        return {input_name(self.spec): steps, "condition": condition}

    # --- notes ---

    def _parse(self, strings):
        """Event strings [B, L] → (ids [B, L, 3] int32, valid [B, L]); "" is padding."""
        flat = tf.reshape(strings, [-1])
        parts = tf.strings.split(flat, "|")
        well_formed = (parts.row_lengths() == 3) | (flat == "")
        fields = parts.to_tensor(default_value="0", shape=[tf.size(flat), 3])
        numbers = tf.strings.regex_full_match(fields[:, 1:], "[0-9]{1,6}")
        checks = [tf.debugging.assert_equal(tf.reduce_all(well_formed), True, message=(
                      "primer: every event is TOKEN|DURATION|SHIFT, e.g. C4.E4.G4|4|2")),
                  tf.debugging.assert_equal(tf.reduce_all(numbers), True, message=(
                      "primer: DURATION and SHIFT are whole numbers of grid steps"))]
        with tf.control_dependencies(checks):  # before to_number, whose error names nothing
            steps = tf.strings.to_number(fields[:, 1:], tf.int32)
        ids = tf.stack([self.lookup.lookup(fields[:, 0]),
                        tf.clip_by_value(steps[:, 0], 1, self.spec.max_duration),
                        tf.clip_by_value(steps[:, 1], 0, self.spec.max_shift)], axis=1)
        return tf.reshape(ids, tf.concat([tf.shape(strings), [3]], 0)), strings != ""

    def _format(self, ids):
        return tf.strings.join([tf.gather(self.tokens, ids[..., 0]),
                                tf.strings.as_string(ids[..., 1]),
                                tf.strings.as_string(ids[..., 2])], "|")

    def _generate_notes(self, primer, num_steps, temperature, top_k, seed, key=None,
                        density=None):
        batch = tf.shape(primer)[0]
        ids, valid = self._parse(primer)
        condition = self._conditioned(self._condition(ids, valid, primer), key, density) \
            if self.conditional else None
        with tf.control_dependencies(self._check(batch, num_steps, temperature=temperature,
                                                 seed=seed) + [
                tf.debugging.assert_equal(tf.reduce_all(tf.reduce_any(valid, axis=1)), True,
                                          message="primer: every row needs an event"),
                tf.debugging.assert_equal(tf.shape(top_k)[0], batch,
                                          message="top_k: one value per row"),
                tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0")]):
            events = decoders.generate_next_step(self.decoder, self.spec, ids, valid, num_steps,
                                                 temperature, top_k, tf.zeros_like(temperature),
                                                 seed, condition)
        keep = tf.range(tf.shape(events)[1])[None] < num_steps[:, None]
        return self._with_condition({"tokens": tf.where(keep, self._format(events), "")},
                                    condition)

    @staticmethod
    def _with_condition(outputs, condition):
        return outputs if condition is None else {**outputs, "condition": condition}

    def _next_notes(self, context):
        ids, valid = self._parse(context)
        condition = self._condition(ids, valid, context) if self.conditional else None
        # "" pads, as in generate
        _, logits = decoders.feed(self.decoder, self.spec, ids, valid, condition)
        return {f"{f}_probs": tf.nn.softmax(lg) for f, lg in zip(NOTE_FIELDS, logits)}

    def _likelihood_notes(self, events):
        ids, valid = self._parse(events)
        targets = ids[:, 1:]
        condition = self._condition(ids, valid, events) if self.conditional else None
        out = self._every_position(ids[:, :-1], condition)
        nll = {f"{f}_nll": tf.nn.sparse_softmax_cross_entropy_with_logits(targets[..., i], out[f])
               for i, f in enumerate(NOTE_FIELDS)}
        both = valid[:, 1:] & valid[:, :-1]
        counted = both & (targets[..., 0] > 0)
        nll = {k: tf.where(counted, v, 0.0) for k, v in nll.items()}
        return {"nll": tf.add_n(list(nll.values())), **nll,
                "counted": tf.cast(counted, tf.float32),
                "oov": tf.cast(both & (targets[..., 0] == 0), tf.float32)}

    def _every_position(self, inputs, condition=None):
        """Next-step logits at every position of `inputs` ([B, L, ...]): one pass for causal
        models; for window models, one window (zero-padded at the start) per position."""
        if self.family != "bilstm":
            return self.model(self._model_inputs(inputs, condition), training=False)
        pad = tf.zeros_like(inputs[:, :1])
        padded = tf.concat([tf.repeat(pad, self.window - 1, axis=1), inputs], 1)
        windows = tf.signal.frame(padded, self.window, 1, axis=1)  # [B, L, W, ...]
        shape = tf.shape(windows)
        flat = tf.reshape(windows, tf.concat([[-1], shape[2:]], 0))
        out = self.model(flat, training=False)
        return tf.nest.map_structure(
            lambda t: tf.reshape(t, tf.concat([shape[:2], tf.shape(t)[1:]], 0)), out)

    # --- piano rolls ---

    def _likelihood_roll(self, frames):
        condition = self._condition(frames) if self.conditional else None
        logits = self._every_position(frames[:, :-1], condition)
        return self._roll_nll(frames[:, 1:], logits)

    def _likelihood_seq2seq(self, encoder, target):
        from trainer.models.seq2seq import decoder_inputs_tf

        logits = self.model({"encoder": encoder, "decoder": decoder_inputs_tf(target)},
                            training=False)
        return self._roll_nll(target, logits)

    @staticmethod
    def _roll_nll(target, logits):
        nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        return {"nll": tf.reduce_sum(nll, -1), "probs": tf.sigmoid(logits)}


    def _generate_roll(self, primer, num_steps, temperature, threshold, seed, key=None,
                       density=None):
        batch = tf.shape(primer)[0]
        condition = self._conditioned(self._condition(primer), key, density) \
            if self.conditional else None
        with tf.control_dependencies(self._check(
                batch, num_steps, temperature=temperature, threshold=threshold, seed=seed) + [
                tf.debugging.assert_greater(tf.shape(primer)[1], 0, message="primer is empty")]):
            if self.family == "seq2seq":
                frames = decoders.generate_seq2seq(self.model, self.spec, primer, num_steps,
                                                   temperature, threshold, seed)
            elif self.family == "vae":
                frames = decoders.generate_vae(self.model, primer, num_steps, temperature,
                                               threshold, seed)
            else:
                valid = tf.ones(tf.shape(primer)[:2], tf.bool)
                frames = decoders.generate_next_step(self.decoder, self.spec, primer, valid,
                                                     num_steps, temperature, None, threshold,
                                                     seed, condition)
        keep = tf.range(tf.shape(frames)[1])[None] < num_steps[:, None]
        return self._with_condition({"frames": frames * tf.cast(keep, tf.float32)[..., None]},
                                    condition)

    def _next_roll(self, context):
        if self.family != "seq2seq":  # the same path as generate's primer
            valid = tf.ones(tf.shape(context)[:2], tf.bool)
            condition = self._condition(context) if self.conditional else None
            _, logits = decoders.feed(self.decoder, self.spec, context, valid, condition)
            return {"probs": tf.sigmoid(logits[0])}
        states = self.model.encode(context)
        start = tf.concat([tf.zeros_like(context[:, :1]), tf.ones_like(context[:, :1, :1])], -1)
        logits, _ = self.model.decode(start, states)
        return {"probs": tf.sigmoid(logits[:, -1])}

    # --- vae ---

    def _encode(self, context):
        """The posterior mean of the context's last segment, and its reconstruction."""
        mean, _ = self.model.encode(decoders.segment_of(context, self.model.segment))
        return {"latent": mean, "probs": tf.sigmoid(self.model.decode(mean))}

    def _interpolate(self, a, b, num_points, temperature, threshold, seed):
        batch = tf.shape(a)[0]
        most = max(1, self.max_steps // self.model.segment)  # points are whole segments
        with tf.control_dependencies(self._check(
                batch, num_points, "num_points", temperature=temperature, threshold=threshold,
                seed=seed) + [
                tf.debugging.assert_less_equal(num_points, most, message=(
                    f"num_points must be <= {most} (max_steps / segment)")),
                tf.debugging.assert_equal(tf.shape(b)[0], batch, message="b: one row per a row"),
                tf.debugging.assert_greater(tf.shape(a)[1], 0, message="a is empty"),
                tf.debugging.assert_greater(tf.shape(b)[1], 0, message="b is empty")]):
            frames = decoders.interpolate_vae(self.model, a, b, num_points, temperature,
                                              threshold, seed)
        return {"frames": frames}

    def _likelihood_vae(self, frames):
        """Per frame: the reconstruction NLL decoding the posterior mean plus the segment's KL
        spread over its frames, segment by segment (the last one zero-padded at the end): an
        ELBO-style score (a plug-in estimate at the posterior mean), not the NLL."""
        segment = self.model.segment
        length = tf.shape(frames)[1]
        pad = (-length) % segment
        padded = tf.pad(frames, [[0, 0], [0, pad], [0, 0]])
        batch, count = tf.shape(frames)[0], (length + pad) // segment
        chunks = tf.reshape(padded, [-1, segment, self.spec.keys])
        mean, log_var = self.model.encode(chunks)
        logits = self.model.decode(mean)
        kl = tf.reduce_sum(kl_per_dimension(mean, log_var), -1)
        per_frame = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(chunks, logits), -1)
        per_frame += kl[:, None] / tf.cast(segment, tf.float32)
        nll = tf.reshape(per_frame, [batch, count * segment])[:, :length]
        probs = tf.reshape(tf.sigmoid(logits), [batch, count * segment, -1])[:, :length]
        return {"nll": nll, "probs": probs}

    # --- wgan_gp ---

    def _generate_gan(self, num_steps, form, temperature, threshold, seed):
        batch = tf.shape(num_steps)[0]
        letters = tf.strings.regex_full_match(form, "[A-Z]*")
        with tf.control_dependencies(self._check(batch, num_steps, temperature=temperature,
                                                 threshold=threshold, seed=seed) + [
                tf.debugging.assert_equal(tf.shape(form)[0], batch,
                                          message="form: one value per row"),
                tf.debugging.assert_equal(tf.reduce_all(letters), True, message=(
                    "form: capital letters A-Z, one per segment, e.g. ABCAB"))]):
            frames = decoders.generate_wgan(self.model, num_steps, form, temperature,
                                            threshold, seed)
        keep = tf.range(tf.shape(frames)[1])[None] < num_steps[:, None]
        return {"frames": frames * tf.cast(keep, tf.float32)[..., None]}

    def _from_noise(self, noise):
        """The generator's key probabilities [B, segment, keys] for given noise vectors."""
        return {"probs": self.model.generate(noise)}

    # --- refine ---

    def _refine(self, pitch, onset, duration):
        """Velocities (1-127) and snapped durations (grid steps) of notes given as rows sorted
        by onset, top voice first (`preprocessing.performance`); rows with duration 0 are
        padding and come back as they went in."""
        with tf.control_dependencies([
                tf.debugging.assert_equal(tf.shape(onset), tf.shape(pitch),
                                          message="onset: one per pitch"),
                tf.debugging.assert_equal(tf.shape(duration), tf.shape(pitch),
                                          message="duration: one per pitch"),
                tf.debugging.assert_non_negative(duration, message="duration must be >= 0")]):
            out = self.model({"pitch": pitch, "onset": onset, "duration": duration},
                             training=False)
        valid = duration > 0
        velocity = tf.cast(tf.round(out["velocity"][..., 0] * 127.0), tf.int32)
        snapped = tf.argmax(out["duration"][..., 1:], -1, output_type=tf.int32) + 1
        return {"velocity": tf.where(valid, tf.clip_by_value(velocity, 1, 127), 0),
                "duration": tf.where(valid, snapped, duration)}

    # --- bars ---

    def _generate_bars(self, chords, num_bars, seed):
        batch = tf.shape(chords)[0]
        with tf.control_dependencies(self._check(batch, num_bars, "num_bars", seed=seed) + [
                tf.debugging.assert_greater(tf.shape(chords)[1], 0, message="chords is empty")]):
            bars = decoders.generate_midinet(self.model, chords, num_bars, seed)
        keep = tf.range(tf.shape(bars)[1])[None] < num_bars[:, None]
        return {"bars": bars * tf.cast(keep, tf.float32)[..., None, None]}

    def _next_bar(self, chord, previous, seed):
        z = rng.normal_tf(seed, 0, 0, self.model.noise)
        return {"probs": self.model.generate(z, chord, previous[..., None])[..., 0]}


# --- layout -----------------------------------------------------------------------------------

def versions(base: Path) -> list[int]:
    return sorted(int(p.name) for p in Path(base).glob("*") if p.name.isdigit() and p.is_dir())


def is_conditional(model) -> bool:
    """Whether the model reads a condition vector (`--hparams condition=true`)."""
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a subclassed model: never conditional here
        return False
    return isinstance(inputs, dict) and "condition" in inputs


def export(model, family: str, spec: DataSpec, window: int, export_dir: str | Path,
           name: str | None = None, vocab=None, max_steps: int = DEFAULT_MAX_STEPS,
           conditions=None) -> Path:
    """Saves `export_dir/NAME/<next version>/` atomically and updates models.config.

    The SavedModel is written into a hidden folder beside the versions and renamed into place,
    so a server polling the folder never sees half a model. `conditions`: the training windows'
    condition vectors, for a conditional model's key profiles.
    """
    base = Path(export_dir) / (name or family)
    base.mkdir(parents=True, exist_ok=True)
    module = Exported(model, family, spec, window, vocab, max_steps, conditions)
    _remove_stale_staging(base)
    staging = base / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(module, str(staging), signatures=module.signatures())
    version = (versions(base) or [0])[-1] + 1
    target = base / str(version)
    os.rename(staging, target)
    write_models_config(export_dir)
    return target


def _remove_stale_staging(base: Path) -> None:
    """Removes `.staging-PID` folders of exports whose process is gone (killed mid-export)."""
    for folder in base.glob(".staging-*"):
        pid = folder.name.removeprefix(".staging-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_models_config(export_dir: str | Path) -> Path:
    """Lists every model under `export_dir` in TF Serving's model_config_list text format, with
    base paths as the Dockerfile lays them out (/models/NAME)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for folder in sorted(Path(export_dir).iterdir()):
        if folder.is_dir() and versions(folder):
            entry = config.model_config_list.config.add()
            entry.name, entry.base_path = folder.name, f"/models/{folder.name}"
            entry.model_platform = "tensorflow"
    path = Path(export_dir) / "models.config"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text_format.MessageToString(config))
    os.replace(tmp, path)
    return path
