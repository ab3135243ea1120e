"""Corpus → encoded dataset on disk: parallel parsing, a parse cache, a stable split, npz shards.

Layout of an output folder:
    meta.json            settings, counts and the pieces of every split
    vocab.json           the `notes` vocabulary (built from the training split)
    report.json          every input file with status "ok" or "skipped" and a reason
    {split}-{k:05d}.npz  arrays of up to `PIECES_PER_SHARD` pieces, ragged via `offsets`
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from preprocessing import bars, notes, performance, pianoroll, transforms
from preprocessing.piece import InputError, Piece
from preprocessing.readers import (
    ReadOptions,
    check_suffix,
    content_digest,
    expand_inputs,
    read_bytes,
    read_file,
)

REPRESENTATIONS = ("notes", "pianoroll", "bars", "performance")
SPLITS = ("train", "validation", "test")
PIECES_PER_SHARD = 2000
CACHE_VERSION = 2  # 2: pieces with notes before their start are refused


def cache_root() -> Path:
    """The cache folder: $COMPOSER_CACHE, or ~/.cache/composer."""
    return Path(os.environ.get("COMPOSER_CACHE") or Path.home() / ".cache" / "composer")



@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything that decides the encoded data, saved in meta.json.

    Attributes:
        representation: "notes", "pianoroll" or "bars".
        steps_per_quarter: grid of `notes` and `pianoroll`.
        encoding: `pianoroll` encoding, "active", "sampled" or "onset-sustain".
        max_duration: `notes` and `performance`: longest duration in steps.
        max_shift: `notes`: longest time between events in steps.
        chords: `notes`: "split" (notes that start together are events one after another,
            highest first) or "classes" (one token per chord).
        to_c: transpose every piece to C major / A minor.
        augment: add ±1..N semitone transpositions of training pieces.
        validation: share of pieces held out for validation.
        test: share of pieces held out for testing.
        read: track selection and limits for the readers.
    """

    representation: str = "notes"
    steps_per_quarter: int = 4
    encoding: str = "active"
    max_duration: int = 32
    max_shift: int = 32
    chords: str = "split"
    to_c: bool = False
    augment: int = 0
    validation: float = 0.1
    test: float = 0.1
    read: ReadOptions = ReadOptions()

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise InputError(f"--representation: unknown {self.representation!r}; "
                             f"choose from {', '.join(REPRESENTATIONS)}")
        if self.encoding not in pianoroll.ENCODINGS:
            raise InputError(f"--encoding: unknown {self.encoding!r}; "
                             f"choose from {', '.join(pianoroll.ENCODINGS)}")
        if self.chords not in notes.CHORDS:
            raise InputError(f"--chords: unknown {self.chords!r}; choose from "
                             f"{', '.join(notes.CHORDS)}")
        if self.max_shift > self.max_duration:
            raise InputError("--max-shift must be <= --max-duration (rests last one shift)")
        if self.steps_per_quarter < 1 or self.augment < 0:
            raise InputError("--steps-per-quarter must be >= 1 and --augment >= 0")
        if not 0 <= self.validation + self.test < 1:
            raise InputError("--validation + --test must be in [0, 1)")

    @classmethod
    def from_dict(cls, fields: dict) -> "Settings":
        # datasets written before `chords` existed made one class per chord
        return cls(**{"chords": "classes", **fields,
                      "read": ReadOptions(**fields.get("read", {}))})


def split_of(digest: str, settings: Settings = Settings()) -> str:
    """The split of a piece, from its content digest alone: stable across runs and machines."""
    u = int(hashlib.sha256(digest.encode()).hexdigest()[:12], 16) / 16**12
    if u < settings.validation:
        return "validation"
    return "test" if u < settings.validation + settings.test else "train"


def encode(piece: Piece, settings: Settings):
    """One piece in the chosen representation (events, roll, or a dict of bar arrays)."""
    if settings.representation == "notes":
        return notes.piece_to_events(piece, settings.steps_per_quarter, settings.max_duration,
                                     settings.max_shift, settings.chords)
    if settings.representation == "pianoroll":
        return pianoroll.piece_to_roll(piece, settings.steps_per_quarter, settings.encoding)
    if settings.representation == "performance":
        return performance.piece_to_rows(piece, settings.steps_per_quarter, settings.max_duration)
    return bars.piece_to_bars(piece)


# --- parsing, with a cache of parsed pieces keyed by file content and read options -------------

def _cache_path(cache_dir: Path, digest: str, options: ReadOptions) -> Path:
    key = hashlib.sha256(f"{CACHE_VERSION}{digest}{options}".encode()).hexdigest()[:32]
    return cache_dir / "pieces" / key[:2] / f"{key}.npz"


def read_cached(path: Path, options: ReadOptions, cache_dir: Path | None) -> list[Piece]:
    """`read_file` through the parse cache; skips (InputError) are cached too.

    Entries are keyed by content, so they store names with the path left out and get the
    path of the file being read put back.
    """
    check_suffix(path)
    data = read_bytes(path, options)
    if cache_dir is None:
        return read_file(path, options, data)
    cached = _cache_path(cache_dir, content_digest(data), options)
    try:
        with np.load(cached, allow_pickle=False) as stored:
            entry = {k: stored[k] for k in stored.files}
    except (OSError, ValueError):
        entry = None  # missing or unreadable: parse again
    if entry is not None and "skipped" in entry:
        raise InputError(str(entry["skipped"]).replace(_PATH, str(path)))
    if entry is not None:
        pieces = []
        for i in range(int(entry["count"])):
            arrays = {k.split("/", 1)[1]: v for k, v in entry.items() if k.startswith(f"{i}/")}
            arrays["name"] = str(arrays["name"]).replace(_PATH, str(path))
            pieces.append(Piece.from_arrays(arrays))
        return pieces
    try:
        pieces = read_file(path, options, data)
    except InputError as exc:
        _atomic_savez(cached, skipped=str(exc).replace(str(path), _PATH))
        raise
    arrays = {f"{i}/{k}": v for i, p in enumerate(pieces) for k, v in p.to_arrays().items()}
    for i in range(len(pieces)):
        arrays[f"{i}/name"] = np.str_(pieces[i].name.replace(str(path), _PATH))
    _atomic_savez(cached, count=len(pieces), **arrays)
    return pieces


_PATH = "{path}"


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _process(job: tuple[Path, Settings, Path | None]) -> dict:
    """Reads and encodes one file (in a worker process); returns its report row and pieces."""
    path, settings, cache_dir = job
    try:
        pieces = read_cached(path, settings.read, cache_dir)
    except InputError as exc:
        return {"file": str(path), "status": "skipped", "reason": str(exc), "pieces": []}
    out = []
    for piece in pieces:
        split = split_of(piece.digest, settings)
        augment = settings.augment if split == "train" else 0
        encoded = [encode(v, settings) for v in transforms.variants(piece, settings.to_c, augment)]
        out.append({"name": piece.name, "digest": piece.digest, "split": split,
                    "notes": len(piece), "qpm": piece.qpm, "encoded": encoded})
    return {"file": str(path), "status": "ok", "reason": "", "pieces": out}


@contextlib.contextmanager
def _main_not_reimported():
    """Spawned workers import the parent's `__main__` (for `python -m trainer.task`: TensorFlow
    and every model, seconds each); they need this module only, so hide where main is."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__}
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)


def _run(jobs: list, workers: int, progress: bool):
    from tqdm import tqdm

    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(jobs), unit="file", file=sys.stderr,
                                       disable=not progress or None, mininterval=0.5))
        if workers > 1 and len(jobs) >= 16:
            # fork is fast and safe before TensorFlow starts its threads; spawn after
            method = "spawn" if "tensorflow" in sys.modules else "fork"
            pool = stack.enter_context(
                ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)))
            chunk = max(1, min(32, len(jobs) // (8 * workers)))
            with _main_not_reimported():  # the workers start here
                results = pool.map(_process, jobs, chunksize=chunk)
        else:
            results = map(_process, jobs)
        for result in results:
            bar.update()
            yield result


# --- writing ------------------------------------------------------------------------------------

def build(inputs: list[str], out: str | Path, settings: Settings = Settings(), *,
          limit: int | None = None, workers: int | None = None,
          cache_dir: Path | str | None = "default", progress: bool = True) -> dict:
    """Reads every input, encodes it and writes the dataset folder `out`.

    The folder is written beside `out` and moved into place at the end, so a reader never sees
    half a dataset. report.json is written even when nothing usable is left.

    Args:
        cache_dir: the parse cache; "default" for `cache_root()`, None for no cache.

    Returns:
        The summary written to report.json.

    Raises:
        InputError: an input names nothing, or no file yielded a usable piece.
    """
    began = time.perf_counter()
    out = Path(out)
    cache_dir = cache_root() if cache_dir == "default" else Path(cache_dir) if cache_dir else None
    files = expand_inputs(inputs, limit)
    workers = workers or min(os.cpu_count() or 1, 8)
    rows, pieces = [], {s: [] for s in SPLITS}
    for result in _run([(f, settings, cache_dir) for f in files], workers, progress):
        for p in result.pop("pieces"):
            pieces[p["split"]].append(p)
        rows.append(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        summary = _write(staging, rows, pieces, settings)
        summary["seconds"] = round(time.perf_counter() - began, 3)
        _write_json(staging / "report.json", {"summary": summary, "files": rows})
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not summary["pieces"]["train"] + summary["pieces"]["validation"] + summary["pieces"]["test"]:
        raise InputError(f"nothing usable in {' '.join(inputs)}: all {len(rows)} files skipped "
                         f"(reasons in {out / 'report.json'})")
    return summary


def _write(folder: Path, rows: list, pieces: dict, settings: Settings) -> dict:
    meta = {"format": CACHE_VERSION, "settings": dataclasses.asdict(settings), "splits": {}}
    if settings.representation == "notes":
        vocab = notes.Vocabulary.build(
            ([t for t, _, _ in events] for p in pieces["train"] for events in p["encoded"]),
            chords=settings.chords, steps_per_quarter=settings.steps_per_quarter,
            max_duration=settings.max_duration, max_shift=settings.max_shift)
        vocab.save(folder / "vocab.json")
    for split, items in pieces.items():
        items.sort(key=lambda p: p["name"])
        entries = []
        for k in range(0, len(items), PIECES_PER_SHARD):
            arrays, chunk = [], items[k:k + PIECES_PER_SHARD]
            for p in chunk:
                arrays.extend(vocab.encode(e) if settings.representation == "notes" else e
                              for e in p["encoded"])
            np.savez(folder / f"{split}-{k // PIECES_PER_SHARD:05d}.npz", **_pack(arrays))
            entries.extend({"name": p["name"], "digest": p["digest"], "notes": p["notes"],
                            "qpm": p["qpm"], "variants": len(p["encoded"])} for p in chunk)
        meta["splits"][split] = entries
    summary = {
        "files": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
        "pieces": {s: len(v) for s, v in pieces.items()},
        "notes": sum(p["notes"] for v in pieces.values() for p in v),
    }
    meta["summary"] = summary
    _write_json(folder / "meta.json", meta)
    return summary


def _pack(items: list) -> dict[str, np.ndarray]:
    """Ragged per-piece arrays (or dicts of arrays) → concatenated arrays plus `offsets`."""
    if items and isinstance(items[0], dict):
        packed = {k: np.concatenate([i[k] for i in items]) for k in items[0]}
        lengths = [len(next(iter(i.values()))) for i in items]
    else:
        packed = {"data": np.concatenate(items) if items else np.zeros((0,))}
        lengths = [len(i) for i in items]
    packed["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return packed


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=1, default=str))


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


# --- reading back -------------------------------------------------------------------------------

def load_meta(folder: str | Path) -> dict:
    try:
        return json.loads((Path(folder) / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: not a preprocessed dataset ({exc})") from None


def load_split(folder: str | Path, split: str = "train") -> list:
    """Per-piece arrays of a split, every variant (transposition) a separate item.

    Returns:
        `notes`: int32 [n, 3] (token id, duration, shift) per item; `pianoroll`: uint8 [T, 88]
        or [T, 88, 2]; `bars`: dicts of "melody", "previous" ([B, 16, 128]) and "chord" ([B, 13]);
        `performance`: int32 [n, 4] (pitch, onset, duration, velocity).
    """
    items = []
    for shard in sorted(Path(folder).glob(f"{split}-*.npz")):
        with np.load(shard, allow_pickle=False) as stored:
            arrays = {k: stored[k] for k in stored.files}
        offsets = arrays.pop("offsets")
        for a, b in zip(offsets[:-1], offsets[1:]):
            items.append(arrays["data"][a:b] if "data" in arrays
                         else {k: v[a:b] for k, v in arrays.items()})
    return items
