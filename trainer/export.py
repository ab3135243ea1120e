"""SavedModel export: every signature in one place, atomic versions, TF Serving's models.config.

Signatures (every input has a leading batch dimension, so TF Serving can batch requests):
- `serving_default`: the next-step distribution for a batch of contexts.
- `generate`: a whole piece per row in one call (the sampling loop runs in the graph).
    notes:     primer [B, L] event strings ("C4.E4.G4|4|2", "" pads), num_steps [B],
               temperature [B], top_k [B], seed [B] → tokens [B, n] (event strings, "" past a
               row's num_steps)
    pianoroll: primer [B, L, keys], num_steps, temperature, threshold (0: sample), seed
               → frames [B, n, keys]
    bars:      chords [B, C, 13], num_bars [B], seed [B] → bars [B, n, 16, 128]
- `metadata`: request [B] (any values) → what a client needs to convert MIDI, one row per
  request row: model, representation, grid, encoding, vocabulary size, window, max_steps.
- `log_likelihood` (all but midinet): teacher-forced NLL in nats of every step after the first.
    notes:     events [B, L] → nll, token_nll, duration_nll, shift_nll [B, L-1]; counted
               (1 where the target counts) and oov (1 where the target token is out of
               vocabulary: left out of the NLL, reported apart)
    pianoroll: frames [B, L, keys] → nll [B, L-1] (sum over keys), probs [B, L-1, keys]
    seq2seq:   encoder [B, T, keys], target [B, T', keys] → nll [B, T'], probs
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import tensorflow as tf

from trainer import decoders, rng
from trainer.data import NOTE_FIELDS, DataSpec

DEFAULT_MAX_STEPS = 4096


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


class Exported(tf.Module):
    """The serving module of one trained model."""

    def __init__(self, model, family: str, spec: DataSpec, window: int, vocab=None,
                 max_steps: int = DEFAULT_MAX_STEPS):
        super().__init__()
        decoders.disable_cudnn(model)
        self.model, self.family, self.spec = model, family, spec
        self.window, self.max_steps = window, max_steps
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
                "max_steps": self.max_steps}

    def _metadata(self, request):
        """One row of metadata per request row: TF Serving batches every signature, and a
        batch needs a batch dimension on every input and output."""
        rows = tf.shape(request)[:1]
        return {k: tf.fill(rows, tf.constant(v)) for k, v in self.metadata_values().items()}

    def signatures(self) -> dict:
        rep, keys = self.spec.representation, self.spec.keys
        meta = tf.function(self._metadata, input_signature=[_spec([None], tf.int32, "request")])
        batch = [_spec([None], tf.int32, "num_steps"), _spec([None], tf.float32, "temperature")]
        if rep == "notes":
            generate = tf.function(self._generate_notes, input_signature=[
                _spec([None, None], tf.string, "primer"), *batch,
                _spec([None], tf.int32, "top_k"), _spec([None], tf.int64, "seed")])
            default = tf.function(self._next_notes, input_signature=[
                _spec([None, None], tf.string, "context")])
        elif rep == "pianoroll":
            generate = tf.function(self._generate_roll, input_signature=[
                _spec([None, None, keys], tf.float32, "primer"), *batch,
                _spec([None], tf.float32, "threshold"), _spec([None], tf.int64, "seed")])
            default = tf.function(self._next_roll, input_signature=[
                _spec([None, None, keys], tf.float32, "context")])
        else:
            generate = tf.function(self._generate_bars, input_signature=[
                _spec([None, None, 13], tf.float32, "chords"), _spec([None], tf.int32, "num_bars"),
                _spec([None], tf.int64, "seed")])
            default = tf.function(self._next_bar, input_signature=[
                _spec([None, 13], tf.float32, "chord"),
                _spec([None, 16, 128], tf.float32, "previous"), _spec([None], tf.int64, "seed")])
        signatures = {"serving_default": default, "generate": generate, "metadata": meta}
        if rep == "notes":
            signatures["log_likelihood"] = tf.function(self._likelihood_notes, input_signature=[
                _spec([None, None], tf.string, "events")])
        elif self.family == "seq2seq":
            signatures["log_likelihood"] = tf.function(self._likelihood_seq2seq, input_signature=[
                _spec([None, None, keys], tf.float32, "encoder"),
                _spec([None, None, keys], tf.float32, "target")])
        elif rep == "pianoroll":
            signatures["log_likelihood"] = tf.function(self._likelihood_roll, input_signature=[
                _spec([None, None, keys], tf.float32, "frames")])
        return signatures

    # --- checks shared by the signatures: InvalidArgument with a message naming the input ---

    def _check(self, batch, num_steps, temperature=None, name="num_steps"):
        checks = [tf.debugging.assert_equal(tf.shape(num_steps)[0], batch,
                                            message=f"{name}: one value per primer row"),
                  tf.debugging.assert_greater(num_steps, 0, message=f"{name} must be >= 1"),
                  tf.debugging.assert_less_equal(
                      num_steps, self.max_steps, message=f"{name} must be <= {self.max_steps}")]
        if temperature is not None:
            checks += [tf.debugging.assert_equal(tf.shape(temperature)[0], batch,
                                                 message="temperature: one value per row"),
                       tf.debugging.assert_greater(temperature, 0.0,
                                                   message="temperature must be > 0")]
        return checks

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

    def _generate_notes(self, primer, num_steps, temperature, top_k, seed):
        batch = tf.shape(primer)[0]
        ids, valid = self._parse(primer)
        with tf.control_dependencies(self._check(batch, num_steps, temperature) + [
                tf.debugging.assert_equal(tf.reduce_all(tf.reduce_any(valid, axis=1)), True,
                                          message="primer: every row needs an event"),
                tf.debugging.assert_equal(tf.shape(top_k)[0], batch, message="top_k: one per row"),
                tf.debugging.assert_non_negative(top_k, message="top_k must be >= 0"),
                tf.debugging.assert_equal(tf.shape(seed)[0], batch, message="seed: one per row")]):
            events = decoders.generate_next_step(self.decoder, self.spec, ids, valid, num_steps,
                                                 temperature, top_k, tf.zeros_like(temperature),
                                                 seed)
        keep = tf.range(tf.shape(events)[1])[None] < num_steps[:, None]
        return {"tokens": tf.where(keep, self._format(events), "")}

    def _next_notes(self, context):
        ids, valid = self._parse(context)
        _, logits = decoders.feed(self.decoder, self.spec, ids, valid)  # "" pads, as in generate
        return {f"{f}_probs": tf.nn.softmax(lg) for f, lg in zip(NOTE_FIELDS, logits)}

    def _likelihood_notes(self, events):
        ids, valid = self._parse(events)
        targets = ids[:, 1:]
        out = self._every_position(ids[:, :-1])
        nll = {f"{f}_nll": tf.nn.sparse_softmax_cross_entropy_with_logits(targets[..., i], out[f])
               for i, f in enumerate(NOTE_FIELDS)}
        both = valid[:, 1:] & valid[:, :-1]
        counted = both & (targets[..., 0] > 0)
        nll = {k: tf.where(counted, v, 0.0) for k, v in nll.items()}
        return {"nll": tf.add_n(list(nll.values())), **nll,
                "counted": tf.cast(counted, tf.float32),
                "oov": tf.cast(both & (targets[..., 0] == 0), tf.float32)}

    def _every_position(self, inputs):
        """Next-step logits at every position of `inputs` ([B, L, ...]): one pass for causal
        models; for window models, one window (zero-padded at the start) per position."""
        if self.family != "bilstm":
            return self.model(inputs, training=False)
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
        logits = self._every_position(frames[:, :-1])
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


    def _generate_roll(self, primer, num_steps, temperature, threshold, seed):
        batch = tf.shape(primer)[0]
        with tf.control_dependencies(self._check(batch, num_steps, temperature) + [
                tf.debugging.assert_greater(tf.shape(primer)[1], 0, message="primer is empty"),
                tf.debugging.assert_equal(tf.shape(seed)[0], batch, message="seed: one per row"),
                tf.debugging.assert_equal(tf.shape(threshold)[0], batch,
                                          message="threshold: one per row")]):
            if self.family == "seq2seq":
                frames = decoders.generate_seq2seq(self.model, self.spec, primer, num_steps,
                                                   temperature, threshold, seed)
            else:
                valid = tf.ones(tf.shape(primer)[:2], tf.bool)
                frames = decoders.generate_next_step(self.decoder, self.spec, primer, valid,
                                                     num_steps, temperature, None, threshold,
                                                     seed)
        keep = tf.range(tf.shape(frames)[1])[None] < num_steps[:, None]
        return {"frames": frames * tf.cast(keep, tf.float32)[..., None]}

    def _next_roll(self, context):
        if self.family != "seq2seq":  # the same path as generate's primer
            valid = tf.ones(tf.shape(context)[:2], tf.bool)
            _, logits = decoders.feed(self.decoder, self.spec, context, valid)
            return {"probs": tf.sigmoid(logits[0])}
        states = self.model.encode(context)
        start = tf.concat([tf.zeros_like(context[:, :1]), tf.ones_like(context[:, :1, :1])], -1)
        logits, _ = self.model.decode(start, states)
        return {"probs": tf.sigmoid(logits[:, -1])}

    # --- bars ---

    def _generate_bars(self, chords, num_bars, seed):
        batch = tf.shape(chords)[0]
        with tf.control_dependencies(self._check(batch, num_bars, name="num_bars") + [
                tf.debugging.assert_greater(tf.shape(chords)[1], 0, message="chords is empty"),
                tf.debugging.assert_equal(tf.shape(seed)[0], batch, message="seed: one per row")]):
            bars = decoders.generate_midinet(self.model, chords, num_bars, seed)
        keep = tf.range(tf.shape(bars)[1])[None] < num_bars[:, None]
        return {"bars": bars * tf.cast(keep, tf.float32)[..., None, None]}

    def _next_bar(self, chord, previous, seed):
        z = rng.normal_tf(seed, 0, 0, self.model.noise)
        return {"probs": self.model.generate(z, chord, previous[..., None])[..., 0]}


# --- layout -----------------------------------------------------------------------------------

def versions(base: Path) -> list[int]:
    return sorted(int(p.name) for p in Path(base).glob("*") if p.name.isdigit() and p.is_dir())


def export(model, family: str, spec: DataSpec, window: int, export_dir: str | Path,
           name: str | None = None, vocab=None, max_steps: int = DEFAULT_MAX_STEPS) -> Path:
    """Saves `export_dir/NAME/<next version>/` atomically and updates models.config.

    The SavedModel is written into a hidden folder beside the versions and renamed into place,
    so a server polling the folder never sees half a model.
    """
    base = Path(export_dir) / (name or family)
    base.mkdir(parents=True, exist_ok=True)
    module = Exported(model, family, spec, window, vocab, max_steps)
    staging = base / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    tf.saved_model.save(module, str(staging), signatures=module.signatures())
    version = (versions(base) or [0])[-1] + 1
    target = base / str(version)
    os.rename(staging, target)
    write_models_config(export_dir)
    return target


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
