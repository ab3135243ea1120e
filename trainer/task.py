"""`python -m trainer.task --model NAME`: preprocess, train with TensorBoard and checkpoints, save.

Job folder (--job-dir, default jobs/NAME): config.json, checkpoints/, backup/ (resume after an
interruption: rerun the same command), logs/ (TensorBoard), samples/, metrics.csv, model.keras,
finished.json (a rerun of a finished job with the same settings and data only exports again).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from preprocessing import dataset, pianoroll
from preprocessing.notes import CHORDS, Vocabulary
from preprocessing.piece import InputError
from preprocessing.readers import ReadOptions
from serving.quiet import quiet_tensorflow
from trainer.config import STRATEGIES, Config, parse_hparams
from trainer.models import MODELS, models_markdown


def parse_args(argv=None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m trainer.task", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=Config.model, choices=MODELS)
    parser.add_argument("--data", nargs="+", default=["corpus:bach"], metavar="PATH",
                        help="files, folders, globs or corpus:NAME (default: the Bach chorales)")
    parser.add_argument("--representation", choices=dataset.REPRESENTATIONS,
                        help="default: the model's first")
    family = " (default: the family's, --list-models)"
    parser.add_argument("--encoding", choices=pianoroll.ENCODINGS,
                        help="pianoroll: what a frame holds (see preprocessing.pianoroll); "
                             "sampled is the JSB Chorales benchmark's" + family)
    parser.add_argument("--chords", default=Config.chords, choices=CHORDS,
                        help="notes: split (a note per event, highest first) or classes (a "
                             "token per chord)")
    parser.add_argument("--steps-per-quarter", type=int, help="the grid" + family)
    parser.add_argument("--to-c", action=argparse.BooleanOptionalAction,
                        help="transpose to C major / A minor" + family)
    parser.add_argument("--augment", type=int, metavar="N",
                        help="add ±1..N semitone transpositions of training pieces" + family)
    parser.add_argument("--epochs", type=int, help="the budget" + family)
    parser.add_argument("--batch-size", type=int, help="windows per update" + family)
    parser.add_argument("--seq-len", type=int, help="window length in steps" + family)
    parser.add_argument("--hparams", default="", help="k=v,... (see README for each model's)")
    parser.add_argument("--seed", type=int, default=Config.seed)
    parser.add_argument("--job-dir", default="")
    parser.add_argument("--strategy", default="default", choices=STRATEGIES)
    parser.add_argument("--limit", type=int, help="use only the first N input files")
    parser.add_argument("--export-dir", default=Config.export_dir,
                        help="SavedModels go to EXPORT_DIR/NAME/<version>/; '' to skip")
    parser.add_argument("--export-name", default="", help="NAME (default: the model family)")
    parser.add_argument("--sample-every", type=int, default=Config.sample_every,
                        help="epochs between samples (0: none)")
    parser.add_argument("--sample-steps", type=int, default=Config.sample_steps)
    parser.add_argument("--patience", type=int,
                        help="early stopping: epochs without improvement" + family)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ logs")
    parser.add_argument("--list-models", nargs="?", const="text", choices=("text", "markdown"),
                        help="describe every model family (hparams, signatures) and exit; "
                             "markdown: the table of docs/MODELS.md")
    args = parser.parse_args(argv)
    quiet_tensorflow(args.verbose)
    if args.list_models == "markdown":
        print(models_markdown(), end="")
        parser.exit()
    if args.list_models:
        print("\n\n".join(family.describe() for family in MODELS.values()))
        parser.exit()
    return Config(model=args.model, data=tuple(args.data), representation=args.representation or "",
                  encoding=args.encoding, chords=args.chords,
                  steps_per_quarter=args.steps_per_quarter,
                  epochs=args.epochs, batch_size=args.batch_size, seq_len=args.seq_len,
                  hparams=parse_hparams(args.hparams, args.model, args.representation or ""),
                  seed=args.seed,
                  job_dir=args.job_dir, strategy=args.strategy, limit=args.limit,
                  sample_every=args.sample_every, sample_steps=args.sample_steps,
                  patience=args.patience, to_c=args.to_c, augment=args.augment,
                  export_dir=args.export_dir,
                  export_name=args.export_name)


def data_settings(config: Config) -> dataset.Settings:
    return dataset.Settings(representation=config.representation,
                            steps_per_quarter=config.steps_per_quarter, encoding=config.encoding,
                            chords=config.chords, to_c=config.to_c, augment=config.augment,
                            read=ReadOptions())


def data_folder(config: Config, settings: dataset.Settings) -> Path:
    """Where the encoded data lives: keyed by inputs and settings, shared between jobs."""
    key = json.dumps([config.data, config.limit, str(settings)])
    if config.multiworker:  # workers sharing a machine must not share a folder
        key += os.environ.get("TF_CONFIG", "")
    return dataset.cache_root() / "datasets" / hashlib.sha256(key.encode()).hexdigest()[:16]


def train_and_evaluate(config: Config) -> dict:
    """Runs a whole job; returns the last epoch's metrics."""
    import keras

    from trainer import data as data_lib
    from trainer import training
    from trainer.export import export_trained

    if config.multiworker:
        from trainer import distributed

        distributed.cluster_strategy()  # before TensorFlow runs an op
    settings = data_settings(config)
    folder = data_folder(config, settings)
    dataset.build(list(config.data), folder, settings, limit=config.limit)
    spec = data_lib.spec_of(folder)
    train, val = training.arrays(config, spec, folder)  # fails before anything is written
    job = Path(config.job_dir)
    vocab = Vocabulary.load(folder / "vocab.json") if spec.representation == "notes" else None

    def export_job(model) -> dict:
        """The export, with the training notes the server's drift gauge compares with (read
        only when there is an export)."""
        reference = training.note_reference(MODELS[config.model], spec, folder, vocab) \
            if config.export_dir else None
        return export_trained(config, spec, model, vocab, train[0], reference)

    if config.multiworker:
        job, fit = distributed.job_dir_for(job), distributed.fit
    else:
        fit = functools.partial(training.fit, val=val, vocab=vocab)  # samples need the vocab
    run = _run_key(config, folder)
    if not config.multiworker and _finished(job, run):
        print(f"{job}: already trained with these settings on this data; exporting its "
              "model.keras (delete the job folder to train again)", file=sys.stderr, flush=True)
        model = keras.saving.load_model(job / "model.keras",
                                        custom_objects=MODELS[config.model].custom_objects)
        finished = json.loads((job / FINISHED).read_text())["metrics"]
        return {**finished, **export_job(model)}
    job.mkdir(parents=True, exist_ok=True)
    (job / FINISHED).unlink(missing_ok=True)
    config.save(job / "config.json")
    (job / "data").unlink(missing_ok=True)
    (job / "data").symlink_to(folder.resolve(), target_is_directory=True)
    keras.utils.set_random_seed(config.seed)
    metrics, model = fit(config, spec, job, train)
    # before the export: a job killed while exporting only exports when rerun
    tmp = job / f"{FINISHED}.tmp"
    tmp.write_text(json.dumps({"run": run, "metrics": metrics}, indent=1))
    os.replace(tmp, job / FINISHED)
    return {**metrics, **(export_job(model) if model else {})}


FINISHED = "finished.json"  # written once model.keras is complete, before the export
# flags that change where a model goes, not what is trained
NOT_TRAINING = ("job_dir", "export_dir", "export_name")


def _run_key(config: Config, folder: Path) -> dict:
    """What decides a trained model: the training settings and the encoded data's content."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_TRAINING}
    data = hashlib.sha256((folder / "meta.json").read_bytes()).hexdigest()
    return json.loads(json.dumps({"config": settings, "data": data}))  # tuples as lists


def _finished(job: Path, run: dict) -> bool:
    """Whether `job` holds a finished run of `run`; says so when it holds another one."""
    try:
        done = json.loads((job / FINISHED).read_text())
    except (OSError, ValueError):
        return False
    if done.get("run") == run and (job / "model.keras").is_file():
        return True
    old = done.get("run", {}).get("config", {})
    changed = [k for k in run["config"] if old.get(k) != run["config"][k]]
    if done.get("run", {}).get("data") != run["data"]:
        changed.append("data")
    print(f"{job}: holds a finished run with other settings ({', '.join(changed) or 'model'}); "
          "training again from epoch 1", file=sys.stderr, flush=True)
    return False


def main(argv=None) -> int:
    try:
        config = parse_args(argv)
        metrics = train_and_evaluate(config)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"job_dir": config.job_dir, **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
