"""Where a reproduction keeps its files: the layout of a work directory, shared by reproduce, report and slurm.

Work directory layout::

    <work>/nnUNet_raw, nnUNet_preprocessed, nnUNet_results   nnU-Net's folders (see workspace)
    <work>/data/                                              the demo's synthetic scenes
    <work>/predictions/<experiment>/                          ensemble PNGs
    <work>/predictions/<experiment>/fold_K/                   fold K's PNGs
    <work>/evaluation/<experiment>/{ensemble,fold_K}/         summary.json, per_image.csv
    <work>/report/                                            report.md and figures
    <work>/slurm_logs/                                        SLURM job logs

What is evaluated of an experiment are its *members*: the fold ensemble
(:data:`ENSEMBLE`) and each fold (``fold_K``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_glacier.workspace import Workspace

ENSEMBLE = "ensemble"


def fold_member(fold: int) -> str:
    """The member name of fold ``fold``: ``fold_K`` (nnU-Net's fold folder name too)."""
    return f"fold_{fold}"


def members(folds: Sequence[int]) -> list[str]:
    """What is evaluated of an experiment trained on ``folds``: the ensemble, then each fold."""
    return [ENSEMBLE, *(fold_member(k) for k in folds)]


@dataclass(frozen=True)
class RunLayout:
    """The paths of a work directory (see the module docstring); experiments are given by name."""

    work: Path

    @property
    def workspace(self) -> Workspace:
        return Workspace.from_work_dir(self.work)

    @property
    def synthetic_data(self) -> Path:
        return self.work / "data"

    def predictions(self, experiment: str, member: str = ENSEMBLE) -> Path:
        """The prediction PNGs of a member: the ensemble's in ``predictions/<experiment>``, a fold's below it."""
        folder = self.work / "predictions" / experiment
        return folder if member == ENSEMBLE else folder / member

    def evaluation(self, experiment: str, member: str) -> Path:
        """The evaluation folder of a member (``member`` may be a glob pattern such as ``fold_*``)."""
        return self.work / "evaluation" / experiment / member

    @property
    def report_dir(self) -> Path:
        return self.work / "report"

    @property
    def slurm_logs(self) -> Path:
        return self.work / "slurm_logs"
