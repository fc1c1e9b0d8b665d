"""SLURM jobs generated from the configs: arrays over folds, dependencies, valid shell."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nnunet_glacier.cli import main
from nnunet_glacier.experiments import select
from nnunet_glacier.slurm import ClusterSettings, write_slurm_jobs

FAKE_SBATCH = """#!/bin/bash
# records its arguments and answers with a job id, like `sbatch --parsable`
echo "$@" >> "$SBATCH_LOG"
n=$(wc -l < "$SBATCH_LOG")
echo "$((1000 + n))"
"""


def submit_with_fake_sbatch(jobs: Path, tmp_path: Path) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    subprocess.run(["bash", str(jobs / "submit_all.sh")], env=env, check=True, capture_output=True)
    return log.read_text().splitlines()


def test_jobs_chain_prepare_fold_array_finish_and_report(tmp_path):
    jobs = tmp_path / "jobs"
    settings = ClusterSettings(partition="gpu", setup="module load cuda")
    written = write_slurm_jobs(select("all"), tmp_path / "caffe", tmp_path / "work", jobs, settings)
    assert len(written) == 6 * 3 + 2
    for path in written:
        subprocess.run(["bash", "-n", str(path)], check=True)  # valid shell
    train = (jobs / "mtl_late_train.sbatch").read_text()
    assert "#SBATCH --array=0,1,2,3,4" in train and "#SBATCH --gres=gpu:1" in train
    assert "#SBATCH --partition=gpu" in train and "module load cuda" in train
    assert "--steps train --folds $SLURM_ARRAY_TASK_ID" in train
    assert "--steps export plan" in (jobs / "fused_prepare.sbatch").read_text()
    assert "--steps predict evaluate" in (jobs / "fused_finish.sbatch").read_text()

    calls = submit_with_fake_sbatch(jobs, tmp_path)
    ids = {call.split()[-1].removesuffix(".sbatch"): str(1001 + i) for i, call in enumerate(calls)}
    assert len(calls) == 6 * 3 + 1
    by_job = {call.split()[-1].removesuffix(".sbatch"): call for call in calls}
    assert f"afterok:{ids['mtl_late_prepare']}" in by_job["mtl_late_train"]
    assert f"afterok:{ids['mtl_late_train']}" in by_job["mtl_late_finish"]
    assert f"afterok:{ids['mtl_late_prepare']}" in by_job["mtl_early_prepare"]  # same dataset: serialised
    assert all(ids[f"{e.name}_finish"] in by_job["report"] for e in select("all"))


def test_slurm_command_uses_the_profiles_folds(tmp_path):
    out = tmp_path / "jobs"
    assert main(["slurm", "--data", str(tmp_path), "--work", str(tmp_path / "w"), "--out", str(out),
                 "--experiments", "fused", "--profile", "demo"]) == 0
    assert "#SBATCH --array=0\n" in (out / "fused_train.sbatch").read_text()
    assert "--profile demo" in (out / "fused_finish.sbatch").read_text()
