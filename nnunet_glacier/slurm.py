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
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from nnunet_glacier.atomic import write_text
from nnunet_glacier.experiments import Experiment
from nnunet_glacier.layout import RunLayout


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
              f"mkdir -p {shlex.quote(str(log_dir))}", f'cd "$(dirname "$0")"']
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
