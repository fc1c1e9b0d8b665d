"""Where a reproduction keeps its files: the layout of a work directory, shared by reproduce, report and slurm.

Work directory layout::

    <work>/nnUNet_raw, nnUNet_preprocessed, nnUNet_results   nnU-Net's folders (see workspace)
    <work>/data/                                              the demo's synthetic scenes
    <work>/predictions/<experiment>/                          ensemble PNGs
    <work>/predictions/<experiment>/fold_K/                   fold K's PNGs
    <work>/evaluation/<experiment>/{ensemble,fold_K}/         summary.json, per_image.csv
    <work>/report/                                            report.md and figures
    <work>/made_from/<dataset or experiment>/<step>[_<piece>].json   what each step's outputs were made from
    <work>/slurm_logs/                                        SLURM job logs

What is evaluated of an experiment are its *members*: the fold ensemble
(:data:`ENSEMBLE`) and each fold (``fold_K``). A fold is, as in nnU-Net, a
number ``K`` of the cross-validation or ``all`` (:mod:`nnunet_glacier.nnunet.folds`), kept in
``fold_K`` / ``fold_all`` folders.

The *made-from records* (:mod:`nnunet_glacier.utilities.provenance`) of a reproduction
say what each step's outputs were made from; :mod:`nnunet_glacier.pipeline.reproduce`
redoes a step whose record is no longer current. Steps on an nnU-Net dataset
(export, plan) are recorded per dataset (experiments may share one), the
others per experiment and fold or member, the report once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_glacier.nnunet.folds import Fold, fold_member
from nnunet_glacier.nnunet.workspace import DEFAULT_WORK, Workspace

ENSEMBLE = "ensemble"


def members(folds: Sequence[Fold]) -> list[str]:
    """What is evaluated of an experiment trained on ``folds``: the ensemble, then each fold."""
    return [ENSEMBLE, *(fold_member(k) for k in folds)]


@dataclass(frozen=True)
class RunLayout:
    """The paths of a work directory (see the module docstring); experiments are given by name.

    ``workspace`` holds nnU-Net's folders: inside ``work`` unless the user's
    ``nnUNet_*`` variables place them elsewhere (:meth:`resolve`).
    """

    work: Path
    workspace: Workspace

    @classmethod
    def in_work_dir(cls, work: str | Path) -> RunLayout:
        """Everything inside ``work`` (made absolute), nnU-Net's folders included."""
        return cls(Path(work).resolve(), Workspace.from_work_dir(work))

    @classmethod
    def resolve(cls, work: str | Path | None, default: str | Path = DEFAULT_WORK) -> RunLayout:
        """``work`` if given (everything inside it); else our outputs in ``default`` and nnU-Net's folders
        from the user's ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` when all are set."""
        return cls(Path(work if work is not None else default).resolve(), Workspace.resolve(work, default))

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

    def record(self, step: str, subject: str | None = None, piece: str | None = None) -> Path:
        """The made-from record of ``step`` done for ``subject`` (a dataset or experiment name; ``None`` for the
        report) and, for a per-fold or per-member step, ``piece``:
        ``made_from/<subject>/<step>[_<piece>].json``."""
        folder = self.work / "made_from" / subject if subject is not None else self.work / "made_from"
        return folder / (f"{step}_{piece}.json" if piece is not None else f"{step}.json")

    @property
    def report_dir(self) -> Path:
        return self.work / "report"

    @property
    def slurm_logs(self) -> Path:
        return self.work / "slurm_logs"
