"""The `notes` representation: note events that keep their duration and the time to the next.

An event is (token, duration, shift): `token` is a pitch name such as `E-5` or `R` for a rest;
`duration` and `shift` (time from this event's onset to the next one's) are counted in grid
steps. Notes that start together are written one after another with shift 0, highest first
(BachBot's serialization, `chords="split"`, the default): the vocabulary is the 88 piano keys,
so no chord of pitches in range is out of vocabulary. `chords="classes"` instead makes the notes
that start together with the same length one chord token (pitch names joined by dots,
`C4.E4.G4`), one softmax class per chord seen in training. Either way the grid round-trip is
exact, and gaps longer than `max_shift` are bridged by rests.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path

import numpy as np

from preprocessing.pianoroll import KEYS, LOWEST
from preprocessing.piece import PITCH_BY_NAME, PITCH_NAMES, InputError, Piece, from_notes, quantize

REST = "R"
OOV = "<oov>"
SEPARATOR = "|"
CHORDS = ("split", "classes")
PIANO = range(LOWEST, LOWEST + KEYS)  # A0-C8: in a split vocabulary, seen in training or not


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Token ids for the event vocabulary; durations and shifts are their own step counts.

    Attributes:
        tokens: token strings; id 0 is the out-of-vocabulary token and id 1 the rest.
        steps_per_quarter: the grid.
        max_duration: longest duration in steps (longer notes are clipped).
        max_shift: longest shift in steps (longer gaps are bridged by rests).
    """

    tokens: tuple[str, ...]
    steps_per_quarter: int = 4
    max_duration: int = 32
    max_shift: int = 32

    @classmethod
    def build(cls, token_lists, min_count: int = 1, chords: str = "split",
              **grid) -> "Vocabulary":
        """Builds the vocabulary from event-token sequences, most frequent first; a split
        vocabulary also holds every piano key its data never played, last."""
        counts = collections.Counter(t for tokens in token_lists for t in tokens)
        counts.pop(REST, None)
        ordered = sorted((t for t, c in counts.items() if c >= min_count),
                         key=lambda t: (-counts[t], t))
        if chords == "split":
            ordered += [PITCH_NAMES[p] for p in PIANO if PITCH_NAMES[p] not in counts]
        return cls(tokens=(OOV, REST, *ordered), **grid)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, events: list[tuple[str, int, int]]) -> np.ndarray:
        """(token, duration, shift) rows → int32 [n, 3] of (token id, duration, shift)."""
        index = self.index
        rows = [(index.get(t, 0), d, s) for t, d, s in events]
        return np.asarray(rows, np.int32).reshape(-1, 3)

    def decode(self, ids: np.ndarray) -> list[tuple[str, int, int]]:
        return [(self.tokens[t], int(d), int(s)) for t, d, s in np.asarray(ids).reshape(-1, 3)]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        try:
            fields = json.loads(Path(path).read_text())
            return cls(**{**fields, "tokens": tuple(fields["tokens"])})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{path}: not a vocabulary file ({exc})") from None


def chord_token(pitches) -> str:
    return ".".join(PITCH_NAMES[p] for p in sorted(set(int(p) for p in pitches)))


def token_pitches(token: str) -> list[int]:
    """Pitches of a token; [] for the rest and OOV tokens and for names it does not know."""
    if token in (REST, OOV):
        return []
    return [PITCH_BY_NAME[n] for n in token.split(".") if n in PITCH_BY_NAME]


def piece_to_events(piece: Piece, steps_per_quarter: int = 4, max_duration: int = 32,
                    max_shift: int = 32, chords: str = "split") -> list[tuple[str, int, int]]:
    """Encodes a piece as (token, duration, shift) events on the grid (`chords`: see above)."""
    if chords not in CHORDS:
        raise ValueError(f"chords: {chords!r} is not one of {', '.join(CHORDS)}")
    if not len(piece):
        return []
    onset, length = quantize(piece, steps_per_quarter)
    length = np.minimum(length, max_duration)
    if chords == "split":  # a group per onset, highest note first
        order = np.lexsort((-piece.pitch, onset))
        new_group = np.diff(onset[order]) != 0
    else:  # a group per distinct (onset, length): a chord
        order = np.lexsort((piece.pitch, -length, onset))
        new_group = (np.diff(onset[order]) != 0) | (np.diff(length[order]) != 0)
    onset, length, pitch = onset[order], length[order], piece.pitch[order]
    starts = np.flatnonzero(np.r_[True, new_group])
    ends = np.r_[starts[1:], len(onset)]
    events = _rests(int(onset[0]), max_shift)
    for i, (a, b) in enumerate(zip(starts, ends)):
        gap = int(onset[ends[i]] - onset[a]) if b < len(onset) else int(length[a:b].max())
        shift = min(gap, max_shift)
        group = [(PITCH_NAMES[p], int(n)) for p, n in zip(pitch[a:b], length[a:b])] \
            if chords == "split" else [(chord_token(pitch[a:b]), int(length[a]))]
        events.extend((token, n, 0) for token, n in group[:-1])
        events.append((*group[-1], shift))
        events.extend(_rests(gap - shift, max_shift))
    return events


def _rests(steps: int, max_shift: int) -> list[tuple[str, int, int]]:
    out = []
    while steps > 0:
        step = min(steps, max_shift)
        out.append((REST, step, step))
        steps -= step
    return out


def events_to_piece(events, steps_per_quarter: int = 4, qpm: float = 120.0,
                    name: str = "generated") -> Piece:
    """Decodes (token, duration, shift) events; unknown tokens and rests sound nothing."""
    rows, time = [], 0
    for token, duration, shift in events:
        for p in token_pitches(token):
            rows.append((p, time / steps_per_quarter, max(int(duration), 1) / steps_per_quarter))
        time += int(shift)
    return from_notes(rows, name=name, qpm=qpm)


def event_string(event: tuple[str, int, int]) -> str:
    """The string form used across the serving API: `C4|4|2` (`C4.E4.G4|4|2`: a chord class)."""
    return SEPARATOR.join(map(str, event))


def parse_event_string(text: str) -> tuple[str, int, int]:
    token, duration, shift = text.split(SEPARATOR)
    return token, int(duration), int(shift)
