"""The serving module of the next-step families (`lstm`, `attention_lstm`, `bilstm`): notes or
piano-roll steps, optionally conditioned on a key and a note density."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from preprocessing.transforms import KEY_INDEX
from trainer import conditions as cond_lib
from trainer import decoders
from trainer.data import NOTE_FIELDS
from trainer.export.base import (
    DEFAULT_MAX_STEPS,
    Exported,
    keep_rows,
    per_row,
    signature,
    spec,
)


def is_conditional(model) -> bool:
    """Whether the model reads a condition vector (`--hparams condition=true`)."""
    try:
        inputs = model.input
    except (AttributeError, ValueError):  # a subclassed model: never conditional here
        return False
    return isinstance(inputs, dict) and "condition" in inputs


class NextStepExport(Exported):
    """Signatures:
    - `generate`: notes: primer [B, L] event strings ("C4|4|2", "" pads), num_steps,
      temperature, top_k, seed → tokens [B, n] ("" past a row's num_steps); piano roll: primer
      [B, L, keys], num_steps, temperature, threshold (0: sample), seed → frames [B, n, keys].
      Conditional models also take key [B] ("C", "F#m"; "" keeps the primer's) and density
      [B] (< 0 keeps the primer's) and return the condition [B, 15] they used.
    - `serving_default`: context [B, L] (event strings) or [B, L, keys] → next-step
      probabilities per field (notes) or per key (piano roll).
    - `log_likelihood`: teacher-forced NLL in nats of every step after the first. Notes:
      events [B, L] → nll, token_nll, duration_nll, shift_nll [B, L-1], counted (1 where the
      target counts) and oov (1 where the target token is out of vocabulary: left out of the
      NLL). Piano roll: frames [B, L, keys] → nll [B, L-1] (sum over keys), probs.

    The trained layers run step by step (`decoders.Recurrent`); a family whose model reads
    whole windows overrides `make_decoder` and `every_position`.
    """

    def __init__(self, model, family, spec, window, vocab=None,
                 max_steps=DEFAULT_MAX_STEPS, conditions=None):
        super().__init__(model, family, spec, window, vocab, max_steps, conditions)
        self.notes = spec.representation == "notes"
        self.conditional = is_conditional(model)
        if self.conditional:  # the key profiles come from the training windows' conditions
            self.profiles = cond_lib.key_profiles(
                conditions if conditions is not None else np.zeros((0, cond_lib.SIZE)))
            self.keys = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                list(KEY_INDEX), list(KEY_INDEX.values())), -2)
            self.pitches = cond_lib.pitch_table()
        self.decoder = self.make_decoder()
        if self.notes:
            self.tokens = tf.constant(list(vocab.tokens))
            self.lookup = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                self.tokens, tf.range(len(vocab.tokens))), 0)

    def make_decoder(self):
        return decoders.Recurrent(self.model, self.spec)

    def every_position(self, inputs, condition=None):
        """Next-step logits at every position of `inputs` ([B, L, ...]) in one pass."""
        return self.decoder.every_position(inputs, condition)

    # --- signatures ---

    def main_specs(self) -> list:
        if self.notes:
            specs = [spec([None, None], tf.string, "primer"), per_row(tf.int32, "num_steps"),
                     per_row(tf.float32, "temperature"), per_row(tf.int32, "top_k"),
                     per_row(tf.int64, "seed")]
        else:
            specs = self.roll_generate_specs()
        if self.conditional:
            specs += [per_row(tf.string, "key"), per_row(tf.float32, "density")]
        return specs

    def family_signatures(self) -> dict:
        if self.notes:
            steps, generate = [spec([None, None], tf.string, "events")], self._generate_notes
            default, likelihood = self._next_notes, self._likelihood_notes
            context = [spec([None, None], tf.string, "context")]
        else:
            steps, generate = self.roll_specs("frames"), self._generate_roll
            default, likelihood = self._next_roll, self._likelihood_roll
            context = self.roll_specs("context")
        return {"generate": signature(generate, self.main_specs()),
                "serving_default": signature(default, context),
                "log_likelihood": signature(likelihood, steps)}

    # --- conditions ---

    def _condition(self, steps, valid=None, strings=None):
        """The condition vector of each row's primer: events [B, L, 3] with their strings
        [B, L] (where `valid`), or frames."""
        if not self.conditional:
            return None
        if self.notes:
            tokens = tf.strings.regex_replace(strings, r"\|.*", "")
            return cond_lib.from_tokens(tokens, steps[..., 2], valid, self.pitches)
        return cond_lib.from_frames(steps)

    def _conditioned(self, condition, key, density):
        """`condition` with the request's key ("" keeps the primer's) and density (< 0 keeps
        it) put in, after checking them."""
        if condition is None:
            return None
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

    @staticmethod
    def _with_condition(outputs, condition):
        return outputs if condition is None else {**outputs, "condition": condition}

    # --- notes ---

    def _parse(self, strings):
        """Event strings [B, L] → (ids [B, L, 3] int32, valid [B, L]); "" is padding."""
        flat = tf.reshape(strings, [-1])
        parts = tf.strings.split(flat, "|")
        well_formed = (parts.row_lengths() == 3) | (flat == "")
        fields = parts.to_tensor(default_value="0", shape=[tf.size(flat), 3])
        numbers = tf.strings.regex_full_match(fields[:, 1:], "[0-9]{1,6}")
        checks = [tf.debugging.assert_equal(tf.reduce_all(well_formed), True, message=(
                      "primer: every event is TOKEN|DURATION|SHIFT, e.g. C4|4|2")),
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
        condition = self._conditioned(self._condition(ids, valid, primer), key, density)
        with tf.control_dependencies(self.check(batch, num_steps, temperature=temperature,
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

    def _next_notes(self, context):
        ids, valid = self._parse(context)  # "" pads, as in generate
        condition = self._condition(ids, valid, context)
        _, logits = decoders.feed(self.decoder, self.spec, ids, valid, condition)
        return {f"{f}_probs": tf.nn.softmax(lg) for f, lg in zip(NOTE_FIELDS, logits)}

    def _likelihood_notes(self, events):
        ids, valid = self._parse(events)
        targets = ids[:, 1:]
        condition = self._condition(ids, valid, events)
        out = self.every_position(ids[:, :-1], condition)
        nll = {f"{f}_nll": tf.nn.sparse_softmax_cross_entropy_with_logits(targets[..., i], out[f])
               for i, f in enumerate(NOTE_FIELDS)}
        both = valid[:, 1:] & valid[:, :-1]
        counted = both & (targets[..., 0] > 0)
        nll = {k: tf.where(counted, v, 0.0) for k, v in nll.items()}
        return {"nll": tf.add_n(list(nll.values())), **nll,
                "counted": tf.cast(counted, tf.float32),
                "oov": tf.cast(both & (targets[..., 0] == 0), tf.float32)}

    # --- piano rolls ---

    def _generate_roll(self, primer, num_steps, temperature, threshold, seed, key=None,
                       density=None):
        batch = tf.shape(primer)[0]
        condition = self._conditioned(self._condition(primer), key, density)
        with tf.control_dependencies(self.check(
                batch, num_steps, temperature=temperature, threshold=threshold, seed=seed) + [
                tf.debugging.assert_greater(tf.shape(primer)[1], 0, message="primer is empty")]):
            valid = tf.ones(tf.shape(primer)[:2], tf.bool)
            frames = decoders.generate_next_step(self.decoder, self.spec, primer, valid,
                                                 num_steps, temperature, None, threshold,
                                                 seed, condition)
        return self._with_condition({"frames": keep_rows(frames, num_steps)}, condition)

    def _next_roll(self, context):
        valid = tf.ones(tf.shape(context)[:2], tf.bool)  # the same path as generate's primer
        _, logits = decoders.feed(self.decoder, self.spec, context, valid,
                                  self._condition(context))
        return {"probs": tf.sigmoid(logits[0])}

    def _likelihood_roll(self, frames):
        logits = self.every_position(frames[:, :-1], self._condition(frames))
        return self.roll_nll(frames[:, 1:], logits)
