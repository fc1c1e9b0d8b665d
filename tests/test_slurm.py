"""SLURM jobs generated from the configs: arrays over folds, dependencies, valid shell."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nnunet_glacier.cli import main
from nnunet_glacier.data.experiments import select
from nnunet_glacier.pipeline.slurm import ClusterSettings, write_slurm_jobs

FAKE_SBATCH = """#!/bin/bash
# records its arguments and answers with a job id, like `sbatch --parsable`
echo "$@" >> "$SBATCH_LOG"
n=$(wc -l < "$SBATCH_LOG")
echo "$((1000 + n))"
"""


def submit_with_fake_sbatch(script: Path, tmp_path: Path) -> list[str]:
    """Run a submit script with a fake ``sbatch`` on the PATH; returns the arguments of each sbatch call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_LOG": str(log)}
    subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True, timeout=60)
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

    calls = submit_with_fake_sbatch(jobs / "submit_all.sh", tmp_path)
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


def test_shards_hold_every_scene_exactly_once():
    from nnunet_glacier.pipeline.slurm import shard

    scenes = [Path(f"s{i:03d}.tif") for i in range(103)]
    for count in (1, 2, 7, 103, 200):
        parts = [shard(scenes, k, count) for k in range(count)]
        flat = [scene for part in parts for scene in part]
        assert sorted(flat) == scenes and len(flat) == len(set(flat))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


def test_a_shard_is_k_of_n():
    import pytest

    from nnunet_glacier.pipeline.slurm import parse_shard

    assert parse_shard("0/4") == (0, 4) and parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0", "/2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_detect_jobs_shard_a_frozen_scene_list_and_merge_after_every_shard(tmp_path):
    from nnunet_glacier.pipeline.slurm import write_detect_jobs

    scenes = [tmp_path / "archive" / f"Jorum_2011-01-{d:02d}_S1_20_1_1.tif" for d in range(1, 11)]
    jobs = tmp_path / "jobs"
    written = write_detect_jobs(scenes, "paper_model", tmp_path / "out", jobs, shards=4,
                                detect_options=["--pixel-size", "20"],
                                settings=ClusterSettings(partition="gpu", setup="module load cuda"))
    assert [p.name for p in written] == ["scenes.txt", "detect_shards.sbatch", "detect_merge.sbatch",
                                         "submit_detect.sh"]
    for path in written[1:]:
        subprocess.run(["bash", "-n", str(path)], check=True)
    assert (jobs / "scenes.txt").read_text().splitlines() == [str(s.resolve()) for s in scenes]
    shards = (jobs / "detect_shards.sbatch").read_text()
    assert "#SBATCH --array=0-3" in shards and "#SBATCH --partition=gpu" in shards and "module load cuda" in shards
    assert f"-i {jobs / 'scenes.txt'}" in shards and '--shard "$SLURM_ARRAY_TASK_ID/4"' in shards
    assert "--no-summary --pixel-size 20" in shards
    assert f"detect --merge-only -o {tmp_path / 'out'}" in (jobs / "detect_merge.sbatch").read_text()

    calls = submit_with_fake_sbatch(jobs / "submit_detect.sh", tmp_path)
    assert calls == ["--parsable detect_shards.sbatch", "--dependency=afterany:1001 detect_merge.sbatch"]


def test_fewer_scenes_than_shards_make_one_shard_a_scene(tmp_path):
    from nnunet_glacier.pipeline.slurm import write_detect_jobs

    write_detect_jobs([tmp_path / "a.tif", tmp_path / "b.tif"], "m", tmp_path / "out", tmp_path / "jobs", shards=8)
    assert "#SBATCH --array=0-1\n" in (tmp_path / "jobs" / "detect_shards.sbatch").read_text()


def test_slurm_detect_command_freezes_the_folders_scenes(tmp_path, capsys):
    archive = tmp_path / "archive"
    archive.mkdir()
    for day in (1, 2, 3):
        (archive / f"Jorum_2011-01-0{day}_S1_20_1_1.png").write_bytes(b"")
    jobs = tmp_path / "jobs"
    assert main(["slurm-detect", "-m", "paper_model", "-i", str(archive), "-o", str(tmp_path / "out"),
                 "--jobs", str(jobs), "--shards", "2", "--gpus", "0",
                 "--detect-options", "--pixel-size 20 --uncertainty"]) == 0
    assert "3 scenes" in capsys.readouterr().out
    assert len((jobs / "scenes.txt").read_text().splitlines()) == 3
    shards = (jobs / "detect_shards.sbatch").read_text()
    assert "#SBATCH --array=0-1" in shards and "--gres" not in shards
    assert shards.rstrip().endswith("--no-summary --pixel-size 20 --uncertainty")


def test_detect_jobs_freeze_the_context_files_and_pass_them_to_every_shard(tmp_path, capsys):
    archive, context = tmp_path / "archive", tmp_path / "context"
    for folder, days in ((archive, (2, 3, 4)), (context, (1,))):
        folder.mkdir()
        for day in days:
            (folder / f"Jorum_2011-01-0{day}_S1_20_1_1.png").write_bytes(b"")
    jobs = tmp_path / "jobs"
    assert main(["slurm-detect", "-m", "temporal_model", "-i", str(archive), "-o", str(tmp_path / "out"),
                 "--jobs", str(jobs), "--shards", "2", "--context", str(context)]) == 0
    assert (jobs / "context.txt").read_text().splitlines() == [
        str((context / "Jorum_2011-01-01_S1_20_1_1.png").resolve())]
    shards = (jobs / "detect_shards.sbatch").read_text()
    assert f"-i {jobs.resolve() / 'scenes.txt'}" in shards and f"--context {jobs.resolve() / 'context.txt'}" in shards
    subprocess.run(["bash", "-n", str(jobs / "detect_shards.sbatch")], check=True)
    assert "--context" not in (jobs / "detect_merge.sbatch").read_text()

    assert main(["slurm-detect", "-m", "m", "-i", str(archive), "-o", str(tmp_path / "out"), "--jobs", str(jobs),
                 "--context", str(tmp_path / "missing")]) == 1
    assert f"error: {tmp_path / 'missing'}: no such file or folder" in capsys.readouterr().err
