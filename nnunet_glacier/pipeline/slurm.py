"""SLURM job scripts for reproducing the paper on a GPU cluster, generated from the configs.

Per experiment three jobs, chained by dependencies in ``submit_all.sh``:

1. ``<experiment>_prepare.sbatch`` — export, plan and preprocess (CPU);
2. ``<experiment>_train.sbatch`` — a job array over the experiment's folds
   (``--array=0-4`` from its config), one GPU per fold, after 1;
3. ``<experiment>_finish.sbatch`` — predict the test split with every fold and
   the ensemble, evaluate, after all of 2;

and one ``report.sbatch`` after every experiment's finish job. Each job runs
``nnunet-glacier reproduce --steps ...`` on the same work directory, so a
resubmitted job skips what is done and resumes what was interrupted. Early
and late branching share a dataset: their prepare jobs are serialised.

Detection over an archive (:func:`write_detect_jobs`) is a job array and a
merge job, chained by ``submit_detect.sh``:

1. ``detect_shards.sbatch`` — ``--array=0-(N-1)``; shard ``K`` runs
   ``nnunet-glacier detect --shard K/N`` over the frozen scene list
   ``scenes.txt`` (:func:`shard`: every N-th scene from the K-th), writing
   into the one output folder; each scene's record makes a resubmitted shard
   skip its finished scenes, and a lock per scene keeps shards apart; the
   context files of a model with temporal context (``detect --context``) are
   frozen too, into ``context.txt``, and every shard takes its scenes' context
   among all scenes of the list and these;
2. ``detect_merge.sbatch`` — after every shard has ended (``afterany``: the
   scenes of a failed shard are simply missing), ``detect --merge-only``
   rebuilds ``quality.csv`` and ``fronts.gpkg`` from every scene record.
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_glacier.data.experiments import Experiment
from nnunet_glacier.pipeline.layout import RunLayout
from nnunet_glacier.utilities.atomic import write_text


@dataclass(frozen=True)
class ClusterSettings:
    """Site settings for the job headers; ``setup`` is shell run first in every job (e.g. ``module load``)."""

    partition: str | None = None
    account: str | None = None
    gpus_per_fold: int = 1
    cpus: int = 8
    memory_gb: int = 32
    train_hours: int = 48
    prepare_hours: int = 4
    finish_hours: int = 6
    setup: str = ""


def _header(name: str, hours: int, settings: ClusterSettings, log_dir: Path, *, gpus: int = 0,
            array: str | None = None) -> str:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --time={hours}:00:00",
             f"#SBATCH --cpus-per-task={settings.cpus}", f"#SBATCH --mem={settings.memory_gb}G",
             f"#SBATCH --output={log_dir / (name + ('_%a' if array else '') + '_%j.log')}"]
    if gpus:
        lines.append(f"#SBATCH --gres=gpu:{gpus}")
    if array:
        lines.append(f"#SBATCH --array={array}")
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.account:
        lines.append(f"#SBATCH --account={settings.account}")
    lines += ["set -euo pipefail", settings.setup] if settings.setup else ["set -euo pipefail"]
    return "\n".join(lines) + "\n"


def _reproduce(experiments: list[Experiment], data: Path, work: Path, steps: str, extra: str = "") -> str:
    """The ``nnunet-glacier reproduce`` line of a job (the experiments share one profile)."""
    command = (f"nnunet-glacier reproduce --data {shlex.quote(str(data))} --work {shlex.quote(str(work))} "
               f"--profile {shlex.quote(experiments[0].profile)} --experiments {' '.join(e.name for e in experiments)} "
               f"--steps {steps}")
    return f"{command} {extra}".rstrip() + "\n"


def write_slurm_jobs(experiments: list[Experiment], data: Path, work: Path, out_dir: Path,
                     settings: ClusterSettings = ClusterSettings()) -> list[Path]:
    """Write the job scripts and ``submit_all.sh`` into ``out_dir``; returns the files written."""
    data, work, out_dir = Path(data).resolve(), Path(work).resolve(), Path(out_dir)
    log_dir = RunLayout.in_work_dir(work).slurm_logs
    written = []
    submit = ["#!/bin/bash", "# Submit every job with its dependencies: bash submit_all.sh", "set -euo pipefail",
              f"mkdir -p {shlex.quote(str(log_dir))}", 'cd "$(dirname "$0")"']
    finish_ids = []
    previous_prepare_of_dataset: dict[int, str] = {}
    for experiment in experiments:
        name = experiment.name
        folds = ",".join(str(k) for k in experiment.folds)
        jobs = {
            "prepare": _header(f"{name}_prepare", settings.prepare_hours, settings, log_dir)
            + _reproduce([experiment], data, work, "export plan"),
            "train": _header(f"{name}_train", settings.train_hours, settings, log_dir,
                             gpus=settings.gpus_per_fold, array=folds)
            + _reproduce([experiment], data, work, "train", "--folds $SLURM_ARRAY_TASK_ID"),
            "finish": _header(f"{name}_finish", settings.finish_hours, settings, log_dir, gpus=1)
            + _reproduce([experiment], data, work, "predict evaluate",
                         f"--folds {' '.join(str(k) for k in experiment.folds)}"),
        }
        for job, text in jobs.items():
            path = out_dir / f"{name}_{job}.sbatch"
            write_text(path, text)
            written.append(path)
        after = previous_prepare_of_dataset.get(experiment.dataset_id)
        dependency = f"--dependency=afterok:${after} " if after else ""
        submit += [f"{name}_prepare=$(sbatch --parsable {dependency}{name}_prepare.sbatch)",
                   f"{name}_train=$(sbatch --parsable --dependency=afterok:${name}_prepare {name}_train.sbatch)",
                   f"{name}_finish=$(sbatch --parsable --dependency=afterok:${name}_train {name}_finish.sbatch)"]
        previous_prepare_of_dataset[experiment.dataset_id] = f"{name}_prepare"
        finish_ids.append(f"${name}_finish")
    report = out_dir / "report.sbatch"
    write_text(report, _header("report", 1, settings, log_dir) + _reproduce(experiments, data, work, "report"))
    submit += [f"sbatch --dependency=afterok:{':'.join(finish_ids)} report.sbatch",
               'echo "submitted; logs in ' + str(log_dir) + '"']
    submit_path = out_dir / "submit_all.sh"
    write_text(submit_path, "\n".join(submit) + "\n")
    submit_path.chmod(0o755)
    return [*written, report, submit_path]


def parse_shard(text: str) -> tuple[int, int]:
    """A shard as ``K/N`` (the K-th of N, ``0 <= K < N``) -> ``(K, N)``; ``ValueError`` otherwise."""
    index, sep, count = text.partition("/")
    if not sep or not index.isdigit() or not count.isdigit() or not 0 <= int(index) < int(count):
        raise ValueError(f"a shard is K/N with 0 <= K < N, got {text!r}")
    return int(index), int(count)


def shard(scenes: Sequence[Path], index: int, count: int) -> list[Path]:
    """The scenes of shard ``index`` of ``count``: every ``count``-th scene from the ``index``-th.

    The shards of ``0 .. count - 1`` together hold every scene exactly once;
    taking every N-th scene spreads each glacier's series over all shards.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    return list(scenes[index::count])


def write_scene_list(path: Path, scenes: Sequence[Path]) -> Path:
    """Write a scene list file (one absolute path a line), which ``detect -i`` reads like a folder."""
    write_text(path, "".join(f"{Path(scene).resolve()}\n" for scene in scenes))
    return path


def write_detect_jobs(scenes: Sequence[Path], model: str, out: Path, jobs_dir: Path, shards: int,
                      detect_options: Sequence[str] = (), settings: ClusterSettings = ClusterSettings(),
                      hours: int = 12, context: Sequence[Path] = ()) -> list[Path]:
    """Write the jobs that detect ``scenes`` with ``model`` into ``out`` on ``shards`` nodes (module doc).

    ``detect_options`` are further ``nnunet-glacier detect`` arguments given to
    every shard (e.g. ``--pixel-size 20``). The scene list is frozen into
    ``jobs_dir/scenes.txt`` so shards stay the same when the archive grows;
    ``context`` (``detect --context``'s files), when given, into
    ``jobs_dir/context.txt``, which every shard gets as ``--context``.
    Returns the files written (``context.txt`` second, when written).
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    jobs_dir, out = Path(jobs_dir).resolve(), Path(out).resolve()
    shards = min(shards, max(1, len(scenes)))
    log_dir = out / "slurm_logs"
    scene_list = write_scene_list(jobs_dir / "scenes.txt", scenes)
    context_list = [write_scene_list(jobs_dir / "context.txt", context)] if context else []
    options = " ".join(shlex.quote(option) for option in detect_options)
    detect = (f"nnunet-glacier detect -m {shlex.quote(model)} -i {shlex.quote(str(scene_list))} "
              f"-o {shlex.quote(str(out))}"
              + "".join(f" --context {shlex.quote(str(path))}" for path in context_list))
    shard_job = jobs_dir / "detect_shards.sbatch"
    write_text(shard_job, _header("detect_shards", hours, settings, log_dir, gpus=settings.gpus_per_fold,
                                  array=f"0-{shards - 1}")
               + f"{detect} --shard \"$SLURM_ARRAY_TASK_ID/{shards}\" --no-summary {options}".rstrip() + "\n")
    merge_job = jobs_dir / "detect_merge.sbatch"
    write_text(merge_job, _header("detect_merge", 1, settings, log_dir)
               + f"nnunet-glacier detect --merge-only -o {shlex.quote(str(out))}\n")
    submit = jobs_dir / "submit_detect.sh"
    write_text(submit, "\n".join([
        "#!/bin/bash", "# Submit the shards and the merge after them: bash submit_detect.sh", "set -euo pipefail",
        f"mkdir -p {shlex.quote(str(log_dir))}", 'cd "$(dirname "$0")"',
        "shards=$(sbatch --parsable detect_shards.sbatch)",
        "sbatch --dependency=afterany:$shards detect_merge.sbatch",
        f'echo "submitted {len(scenes)} scenes in {shards} shards; logs in {log_dir}"']) + "\n")
    submit.chmod(0o755)
    return [scene_list, *context_list, shard_job, merge_job, submit]
