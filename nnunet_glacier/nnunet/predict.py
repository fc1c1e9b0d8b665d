"""Prediction with trained models: sliding window, per-task maps, 5-fold ensemble.

:class:`GlacierPredictor` wraps nnU-Net's ``nnUNetPredictor`` (preprocessing,
Gaussian-weighted sliding window with mirroring, resampling and un-cropping
are nnU-Net's). For each scene it runs every fold once and returns the
per-fold class probabilities and their mean — the ensemble is the mean of the
folds' class *probabilities* (not logits). Multi-task models' joint
probabilities are split into each task's probabilities
(:func:`~nnunet_glacier.nnunet.networks.task_probabilities`), so one code path
serves all six experiments.

Outputs per scene (CaFFe pixel values, 8-bit single-channel PNG)::

    <stem>_zones.png   zone task: 0 NA, 64 rock, 127 glacier, 254 ocean
    <stem>_front.png   front task: 255 front, 0 background (raw, not skeletonized)
    <stem>_boundary.png   boundary task (MTL boundary experiment)
    <stem>_fused.png   fused task: zone values plus 255 = front class
    <stem>_probabilities.npz   on request: one float16 array (classes, rows, cols) per task
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nnunet_glacier.atomic import atomic_path, write_png
from nnunet_glacier.caffe import read_grey
from nnunet_glacier.errors import InputError, ModelError
from nnunet_glacier.layout import FOLD_ALL, Fold, fold_member
from nnunet_glacier.nnunet.networks import task_probabilities
from nnunet_glacier.nnunet.training import resolve_device
from nnunet_glacier.tasks import TASKS, Task
from nnunet_glacier.workspace import add_trainer_path



NNUNET_SPACING = [999.0, 1.0, 1.0]  # what nnU-Net's 2-D PNG reader reports


@dataclass(frozen=True)
class ScenePrediction:
    """Class probabilities of one scene per task: ``{task: (n_classes, rows, cols) float32}``."""

    probabilities: dict[str, np.ndarray]

    def class_map(self, task: str) -> np.ndarray:
        """The task's class indices (argmax over classes)."""
        return self.probabilities[task].argmax(axis=0).astype(np.uint8)

    def png(self, task: str) -> np.ndarray:
        """The task's class map in CaFFe pixel values."""
        return TASKS[task].to_png(self.class_map(task))


def mean_prediction(predictions: list[ScenePrediction]) -> ScenePrediction:
    """The ensemble: per task, the mean of the members' class probabilities."""
    tasks = predictions[0].probabilities
    return ScenePrediction({task: np.mean([p.probabilities[task] for p in predictions], axis=0) for task in tasks})


class GlacierPredictor:
    """A trained nnunet_glacier model (one nnU-Net results folder) ready to predict scenes.

    ``folds`` (numbers, or ``"all"`` for nnU-Net's fold trained on every
    case) defaults to every fold with the checkpoint, ``fold_all``
    included (:func:`available_folds`); ``step_size`` is
    the sliding-window step as a fraction of the patch size; ``mirroring``
    enables nnU-Net's test-time mirroring.
    """

    def __init__(self, model_dir: str | Path, folds: Sequence[Fold] | None = None, *, device: str = "auto",
                 checkpoint: str = "checkpoint_final.pth", step_size: float = 0.5, mirroring: bool = True,
                 tile_progress: bool = False):
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.model_dir = Path(model_dir)
        self.tasks = _model_tasks(self.model_dir)
        add_trainer_path()  # nnU-Net looks up our trainer class by name to rebuild the network
        if folds is None:
            folds = available_folds(self.model_dir, checkpoint)
        if not folds:
            raise ModelError(self.model_dir, f"no fold_*/{checkpoint} found: is this a trained model folder? "
                                             f"It holds {folder_contents(self.model_dir)}")
        for fold in folds:
            fold_dir = self.model_dir / fold_member(fold)
            if not (fold_dir / checkpoint).is_file():
                raise ModelError(fold_dir / checkpoint, f"checkpoint not found; {fold_dir.name} holds "
                                                        f"{folder_contents(fold_dir)}")
        self.folds = list(folds)
        self.checkpoint, self.step_size, self.mirroring = checkpoint, step_size, mirroring
        self._nnunet = nnUNetPredictor(tile_step_size=step_size, use_mirroring=mirroring,
                                       device=resolve_device(device), allow_tqdm=tile_progress)
        self._nnunet.initialize_from_trained_model_folder(str(self.model_dir), tuple(self.folds), checkpoint)

    def made_from(self) -> dict:
        """What this predictor's outputs are made from: the model folder, folds, the stamps of their
        checkpoints (:func:`~nnunet_glacier.provenance.stamp_files`) and the sliding-window settings."""
        from nnunet_glacier.provenance import stamp_files

        checkpoints = [self.model_dir / fold_member(fold) / self.checkpoint for fold in self.folds]
        return {"model": str(self.model_dir.resolve()), "folds": [str(f) for f in self.folds],
                "checkpoints": stamp_files(checkpoints, self.model_dir), "step_size": self.step_size,
                "mirroring": self.mirroring}

    def predict(self, image: np.ndarray) -> tuple[ScenePrediction, list[ScenePrediction]]:
        """Predict one 2-D grey image (any numeric dtype): the ensemble and each fold's prediction."""
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
        nn = self._nnunet
        preprocessor = nn.configuration_manager.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(image[None, None].astype(np.float32), None,
                                                        {"spacing": NNUNET_SPACING}, nn.plans_manager,
                                                        nn.configuration_manager, nn.dataset_json)
        data = torch.from_numpy(data)
        members = []
        for parameters in nn.list_of_parameters:
            nn.network.load_state_dict(parameters)
            logits = nn.predict_sliding_window_return_logits(data).float().cpu()
            members.append(self._to_scene(logits, properties))
        return mean_prediction(members), members

    def _to_scene(self, logits: torch.Tensor, properties: dict) -> ScenePrediction:
        """Preprocessed-space logits -> per-task probabilities in the input's pixel grid."""
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        nn = self._nnunet
        _, joint = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, nn.plans_manager, nn.configuration_manager, nn.label_manager, properties,
            return_probabilities=True, num_threads_torch=torch.get_num_threads())
        joint = np.asarray(joint, dtype=np.float32)[:, 0]  # drop nnU-Net's pseudo-3D axis
        split = task_probabilities(joint, [t.n_classes for t in self.tasks])
        return ScenePrediction({task.name: p for task, p in zip(self.tasks, split)})


def available_folds(model_dir: Path, checkpoint: str = "checkpoint_final.pth") -> list[Fold]:
    """The folds of a results folder that have ``checkpoint``: numbers in order, then ``"all"`` (``fold_all``).

    (nnU-Net's own auto-detection leaves ``fold_all`` out; a model trained
    only on every case is a model all the same.)
    """
    folds: list[Fold] = []
    for folder in model_dir.glob("fold_*"):
        name = folder.name.removeprefix("fold_")
        if (folder / checkpoint).is_file() and (name.isdigit() or name == FOLD_ALL):
            folds.append(int(name) if name.isdigit() else name)
    return sorted(folds, key=lambda fold: (fold == FOLD_ALL, 0 if fold == FOLD_ALL else fold))


def folder_contents(folder: Path, limit: int = 12) -> str:
    """What a folder holds, for an error message: its entries (folders with a trailing /), or why there are none."""
    if not folder.is_dir():
        return "nothing (no such folder)"
    entries = sorted(f"{p.name}/" if p.is_dir() else p.name for p in folder.iterdir())
    if not entries:
        return "nothing (empty folder)"
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _model_tasks(model_dir: Path) -> tuple[Task, ...]:
    dataset_json = model_dir / "dataset.json"
    if not dataset_json.is_file():
        raise ModelError(model_dir, f"not an nnU-Net results folder (no dataset.json); it holds "
                                    f"{folder_contents(model_dir)}")
    tasks = json.loads(dataset_json.read_text()).get("caffe", {}).get("tasks")
    if not tasks:
        raise ModelError(dataset_json, "no 'caffe' block: not a model trained on a dataset exported by nnunet_glacier")
    return tuple(TASKS[t] for t in tasks)


def output_paths(out_dir: Path, stem: str, tasks: tuple[Task, ...], save_probabilities: bool) -> list[Path]:
    """The files one scene's prediction writes into ``out_dir``."""
    paths = [out_dir / f"{stem}{task.suffix}.png" for task in tasks]
    if save_probabilities:
        paths.append(out_dir / f"{stem}_probabilities.npz")
    return paths


def write_prediction(prediction: ScenePrediction, out_dir: Path, stem: str, save_probabilities: bool) -> None:
    """Write a scene's per-task PNGs (and probabilities) atomically."""
    for task in prediction.probabilities:
        write_png(out_dir / f"{stem}{TASKS[task].suffix}.png", prediction.png(task))
    if save_probabilities:
        with atomic_path(out_dir / f"{stem}_probabilities.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **{t: p.astype(np.float16) for t, p in prediction.probabilities.items()})


@dataclass
class RunReport:
    """What a run over scenes did: stems written, stems skipped (already done), failures (file, problem)."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def predict_images(predictor: GlacierPredictor, images: list[Path], out_dir: str | Path, *,
                   per_fold: bool = False, save_probabilities: bool = False,
                   progress: bool = True) -> RunReport:
    """Predict PNG scenes into ``out_dir`` (ensemble) and, with ``per_fold``, ``out_dir/fold_K``.

    Scenes whose outputs all exist are skipped (re-runs resume); a scene that
    fails (unreadable file, ...) is recorded in the report and the others go on.
    """
    out_dir = Path(out_dir)
    fold_dirs = [out_dir / fold_member(k) for k in predictor.folds] if per_fold else []
    report = RunReport()
    for image_path in tqdm(images, desc=f"predict {predictor.model_dir.name}", disable=not progress):
        stem = image_path.stem.removesuffix("_0000")
        expected = [p for d in [out_dir, *fold_dirs] for p in output_paths(d, stem, predictor.tasks,
                                                                            save_probabilities)]
        if all(p.is_file() for p in expected):
            report.skipped.append(stem)
            continue
        try:
            ensemble, members = predictor.predict(read_grey(image_path))
        except (InputError, ValueError) as err:
            report.failed.append((image_path, str(err)))
            continue
        write_prediction(ensemble, out_dir, stem, save_probabilities)
        for fold_dir, member in zip(fold_dirs, members):
            write_prediction(member, fold_dir, stem, save_probabilities)
        report.written.append(stem)
    return report

