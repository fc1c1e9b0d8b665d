"""Planned tiny datasets and training helpers shared by the tests that train networks.

:class:`TinyRuns` (conftest.py's session fixture ``tiny_runs``) is one run over
a small synthetic CaFFe root (:data:`TINY_DATA`: 6 training and 3 test scenes of
64 px, so that the tiny profile's 64 px patch covers a scene in one tile), laid
out as a user's run without ``--work``: nnU-Net's folders where the
``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` variables say
(:meth:`TinyRuns.planned` sets them), our outputs in ``./work`` of
:attr:`TinyRuns.root`. Each experiment's dataset is exported and planned once per
session, on first use, by reproduce's own ``export`` and ``plan`` steps: their
made-from records are written, so a later ``reproduce`` in the same folders
finds them current instead of planning again. Tests that train their own folds
of a planned dataset without touching the shared models get a work directory of
their own over the same raw and preprocessed data (:meth:`TinyRuns.own_results`).

The helpers shrink a training to what a test asserts: :func:`interrupted_at_epoch`
stops one like Ctrl-C would, and :func:`without_final_validation` skips
nnU-Net's final validation (a sliding-window prediction of every validation case,
exported and scored in two worker pools) where a test compares only weights or
checkpoints.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from nnunet_glacier.data.experiments import get_experiment
from nnunet_glacier.nnunet.workspace import DEFAULT_WORK, NNUNET_FOLDERS, Workspace

PROFILE = "tiny"
#: The shared synthetic root: enough training scenes for nnU-Net's five folds, three test scenes, 64 px.
TINY_DATA = {"n_train": 6, "n_test": 3, "size": (64, 64), "seed": 0, "with_bounding_boxes": True}


class TinyRuns:
    """A run in ``root`` (``root/work``, nnU-Net's folders in ``root/nnunet``) over the CaFFe root ``data``,
    whose experiments' datasets are exported and planned (tiny profile) on first use."""

    def __init__(self, root: Path, data: Path):
        from nnunet_glacier.pipeline.layout import RunLayout

        self.root, self.data = root.resolve(), data
        self.layout = RunLayout(self.root / DEFAULT_WORK,
                                Workspace(*(self.root / "nnunet" / name for name in NNUNET_FOLDERS)))
        self._planned: set[str] = set()

    @property
    def work(self) -> Path:
        return self.layout.work

    @property
    def workspace(self) -> Workspace:
        return self.layout.workspace

    def planned(self, *names: str) -> Workspace:
        """The workspace after the export and plan steps of the experiments ``names``, activated (the
        ``nnUNet_*`` variables name its folders)."""
        from nnunet_glacier.pipeline.reproduce import Reproduction, export_step, plan_step

        for name in names:
            experiment = get_experiment(name, PROFILE)
            run = Reproduction(data=self.data, layout=self.layout, experiments=[experiment], processes=1,
                               progress=False)
            run.workspace.activate()
            if experiment.dataset not in self._planned:
                export_step(run, experiment)
            plan_step(run, experiment)  # after the first time: up to date, and our configuration (re)written
            self._planned.add(experiment.dataset)
        return self.workspace.activate()

    def own_results(self, work: Path, *names: str) -> Path:
        """A work directory ``work`` over the planned datasets of ``names`` (its ``nnUNet_raw`` and
        ``nnUNet_preprocessed`` link to the shared ones) with a results folder of its own; returns ``work``."""
        workspace = self.planned(*names)
        work.mkdir(parents=True, exist_ok=True)
        for variable, shared in zip(NNUNET_FOLDERS, (workspace.raw, workspace.preprocessed)):
            (work / variable).symlink_to(shared, target_is_directory=True)
        (work / NNUNET_FOLDERS[2]).mkdir()
        return work


def interrupt_at_epoch(epoch: int):
    """An ``on_epoch_start`` for ``nnUNetTrainer`` that stops training at ``epoch``, like Ctrl-C would."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    original = nnUNetTrainer.on_epoch_start

    def on_epoch_start(self):
        if self.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self)

    return on_epoch_start


@contextlib.contextmanager
def interrupted_at_epoch(epoch: int) -> Iterator[None]:
    """Within: every training (any trainer) stops at the start of ``epoch`` with ``KeyboardInterrupt``."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nnUNetTrainer, "on_epoch_start", interrupt_at_epoch(epoch))
        yield


@contextlib.contextmanager
def without_final_validation() -> Iterator[None]:
    """Within: trainings started by ``train_fold`` skip nnU-Net's final validation (so the fold has no
    ``validation/summary.json`` and counts as not trained); for tests that compare weights or checkpoints."""
    import nnunetv2.run.run_training as run_training

    original = run_training.get_trainer_from_args

    def trainer_without_validation(*args, **kwargs):
        trainer = original(*args, **kwargs)
        trainer.perform_actual_validation = lambda *_, **__: None
        return trainer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_training, "get_trainer_from_args", trainer_without_validation)
        yield
