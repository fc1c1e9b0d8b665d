"""Prediction with trained models: streamed sliding window, per-task maps, fold ensemble, uncertainty.

:class:`GlacierPredictor` wraps nnU-Net's ``nnUNetPredictor``: its
preprocessing (the scene's z-score normalisation, cropping to the non-zero
region), its network with test-time mirroring and its Gaussian-weighted
sliding window, walked over the scene in bands
(:mod:`nnunet_glacier.nnunet.window`) so that memory is bounded by a band of
tiles per fold, not by the scene times the folds. Class maps equal
``nnUNetPredictor``'s for each fold (up to the float rounding of batched
network calls). The ensemble is the mean of the folds' class
*probabilities* (not logits), accumulated band by band. Multi-task models'
joint probabilities are split into each task's probabilities
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
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nnunet_glacier.data import temporal
from nnunet_glacier.data.caffe import SceneName, read_grey
from nnunet_glacier.data.tasks import TASKS, Task
from nnunet_glacier.errors import InputError, ModelError, problem_of
from nnunet_glacier.nnunet.folds import FOLD_ALL, Fold, fold_member
from nnunet_glacier.nnunet.networks import task_probabilities
from nnunet_glacier.nnunet.prediction_types import RunReport, ScenePrediction
from nnunet_glacier.nnunet.training import resolve_device
from nnunet_glacier.nnunet.uncertainty import fold_disagreement, normalised_entropy
from nnunet_glacier.nnunet.window import CHUNK_ROWS, map_large_allocations, stream_bands
from nnunet_glacier.nnunet.workspace import add_trainer_path
from nnunet_glacier.utilities.atomic import atomic_path, write_json, write_png

NNUNET_SPACING = [999.0, 1.0, 1.0]  # what nnU-Net's 2-D PNG reader reports
#: Sliding-window step (fraction of the patch) of the ``--fast`` preset, which also turns mirroring off.
FAST_STEP_SIZE = 0.75
#: Key of a plans configuration whose models average class probabilities over mirrored copies and tiles, as
#: nnU-Net v1 did (set by ``model import-v1``; see :mod:`~nnunet_glacier.nnunet.window`), not logits as v2 does.
AVERAGE_PROBABILITIES = "average_probabilities"


def mean_prediction(predictions: list[ScenePrediction]) -> ScenePrediction:
    """The ensemble of predictions that hold probabilities: per task, the mean of the members' probabilities."""
    tasks = predictions[0].probabilities
    return ScenePrediction.from_probabilities(
        {task: np.mean([p.probabilities[task].astype(np.float32) for p in predictions], axis=0) for task in tasks})


def first_argmax(p: np.ndarray) -> np.ndarray:
    """``uint8`` index of the largest value along axis 0 (the first on ties, as ``np.argmax``), a class at a time."""
    best = np.array(p[0])
    index = np.zeros(best.shape, dtype=np.uint8)
    for k in range(1, len(p)):
        larger = p[k] > best
        index[larger] = k
        np.maximum(best, p[k], out=best)
    return index


class _SceneAssembler:
    """Collects a scene's prediction band by band from its folds' class probabilities.

    ``shape``: the scene's ``(rows, cols)``; ``cols``: the scene columns
    the bands cover; ``measure``: tasks whose uncertainty (and, with two or
    more folds, disagreement) maps are made; ``members`` /
    ``probabilities``: keep each fold's class maps / ``float16``
    probabilities (the ensemble's, and the members' when kept). Per band it
    holds the ensemble's running sum (``float32``) and, for the disagreement
    of measured tasks, every fold's probabilities of those tasks
    (``float16``).
    """

    def __init__(self, shape: tuple[int, int], cols: slice, tasks: Sequence[Task], n_folds: int, *, members: bool,
                 probabilities: bool, measure: Sequence[str]):
        self.tasks, self.n_folds, self.cols = tuple(tasks), n_folds, cols
        self.measure = tuple(measure)
        self.ensemble = self._empty(shape, probabilities)
        self.folds = [self._empty(shape, probabilities) for _ in range(n_folds)] if members else []
        for task in self.measure:
            self.ensemble.uncertainty[task] = np.zeros(shape, dtype=np.float32)
            if n_folds > 1:
                self.ensemble.disagreement[task] = np.zeros(shape, dtype=np.float16)
        self._rows = slice(0, 0)
        self._sums: dict[str, np.ndarray] = {}
        self._fold_probabilities: dict[str, np.ndarray] = {}

    def _empty(self, shape: tuple[int, int], probabilities: bool) -> ScenePrediction:
        """Class 0 everywhere (with probability 1), as nnU-Net fills the pixels outside its crop."""
        prediction = ScenePrediction({task.name: np.zeros(shape, dtype=np.uint8) for task in self.tasks})
        if probabilities:
            for task in self.tasks:
                p = np.zeros((task.n_classes, *shape), dtype=np.float16)
                p[0] = 1
                prediction.probabilities[task.name] = p
        return prediction

    def begin_band(self, rows: slice) -> None:
        """Start the band of scene ``rows``."""
        self._rows = rows
        size = (rows.stop - rows.start, self.cols.stop - self.cols.start)
        self._sums = {task.name: np.zeros((task.n_classes, *size), dtype=np.float32) for task in self.tasks}
        self._fold_probabilities = {task.name: np.zeros((self.n_folds, task.n_classes, *size), dtype=np.float16)
                                    for task in self.tasks if task.name in self.measure and self.n_folds > 1}

    def add(self, fold: int, rows: slice, probabilities: list[np.ndarray]) -> None:
        """Add one fold's ``float32`` probabilities ``(n, r, c)`` per task of scene ``rows`` of the band."""
        local = slice(rows.start - self._rows.start, rows.stop - self._rows.start)
        for task, p in zip(self.tasks, probabilities):
            self._sums[task.name][:, local] += p
            if task.name in self._fold_probabilities:
                self._fold_probabilities[task.name][fold, :, local] = p
            if self.folds:
                self._put(self.folds[fold], task.name, rows, p)

    def end_band(self) -> None:
        """The band's ensemble: class maps and probabilities of the mean, uncertainty, disagreement."""
        for task, total in self._sums.items():
            for start in range(0, total.shape[1], CHUNK_ROWS):
                local = slice(start, min(start + CHUNK_ROWS, total.shape[1]))
                rows = slice(self._rows.start + local.start, self._rows.start + local.stop)
                mean = total[:, local] / self.n_folds
                self._put(self.ensemble, task, rows, mean)
                if task in self.measure:
                    self.ensemble.uncertainty[task][rows, self.cols] = normalised_entropy(mean)
                if task in self._fold_probabilities:
                    self.ensemble.disagreement[task][rows, self.cols] = fold_disagreement(
                        self._fold_probabilities[task][:, :, local])
        self._sums, self._fold_probabilities = {}, {}

    def _put(self, prediction: ScenePrediction, task: str, rows: slice, p: np.ndarray) -> None:
        prediction.class_maps[task][rows, self.cols] = first_argmax(p)
        if prediction.probabilities:
            prediction.probabilities[task][:, rows, self.cols] = p

    def result(self) -> ScenePrediction:
        return ScenePrediction(self.ensemble.class_maps, self.ensemble.probabilities, self.ensemble.disagreement,
                               self.ensemble.uncertainty, self.folds)


class GlacierPredictor:
    """A trained nnunet_glacier model (one nnU-Net results folder) ready to predict scenes.

    ``folds`` (numbers, or ``"all"`` for nnU-Net's fold trained on every
    case) defaults to every fold with the checkpoint, ``fold_all``
    included (:func:`available_folds`); ``step_size`` is
    the sliding-window step as a fraction of the patch size (``--fast``:
    :data:`FAST_STEP_SIZE` without mirroring); ``mirroring`` enables
    nnU-Net's test-time mirroring; ``tile_progress`` shows a progress bar
    over the tiles of each large scene (more than
    :data:`~nnunet_glacier.nnunet.window.PROGRESS_MIN_TILES` tiles);
    ``low_memory`` trades speed for a peak memory that does not grow with
    the folds (:func:`~nnunet_glacier.nnunet.window.map_large_allocations`,
    process-wide from the first prediction on).
    ``nnunet`` is the wrapped ``nnUNetPredictor`` (network, folds'
    parameters, plans); ``temporal`` the context acquisitions the model
    takes as further input channels, as its export recorded them
    (:mod:`nnunet_glacier.data.temporal`; none: the scene alone).
    """

    def __init__(self, model_dir: str | Path, folds: Sequence[Fold] | None = None, *, device: str = "auto",
                 checkpoint: str = "checkpoint_final.pth", step_size: float = 0.5, mirroring: bool = True,
                 tile_progress: bool = True, low_memory: bool = False):
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
        self.tile_progress, self.low_memory = tile_progress, low_memory
        self.nnunet = nnUNetPredictor(tile_step_size=step_size, use_mirroring=mirroring,
                                      device=resolve_device(device), allow_tqdm=False)
        self.nnunet.initialize_from_trained_model_folder(str(self.model_dir), tuple(self.folds), checkpoint)
        self.temporal = temporal.recorded_settings(self.nnunet.dataset_json)
        n_channels = len(self.nnunet.dataset_json["channel_names"])
        if n_channels != self.temporal.n_channels:
            raise ModelError(self.model_dir / "dataset.json", f"{n_channels} input channels, but the temporal "
                                                              f"context recorded makes {self.temporal.n_channels}")

    def made_from(self) -> dict:
        """What this predictor's outputs are made from: the model folder, folds, the stamps of their
        checkpoints (:func:`~nnunet_glacier.utilities.provenance.stamp_files`) and the sliding-window settings."""
        from nnunet_glacier.utilities.provenance import stamp_files

        checkpoints = [self.model_dir / fold_member(fold) / self.checkpoint for fold in self.folds]
        return {"model": str(self.model_dir.resolve()), "folds": [str(f) for f in self.folds],
                "checkpoints": stamp_files(checkpoints, self.model_dir), "step_size": self.step_size,
                "mirroring": self.mirroring}

    def predict(self, image: np.ndarray, *, members: bool = False, probabilities: bool = False,
                measure: Sequence[str] = ()) -> ScenePrediction:
        """Predict one scene (any numeric dtype): the folds' ensemble (see :class:`ScenePrediction`).

        ``image``: the 2-D grey image ``(rows, cols)``, or its input channels
        ``(channels, rows, cols)`` — for a model with temporal context the
        scene and then its context images on the scene's grid, in the order of
        :attr:`temporal` (:func:`~nnunet_glacier.data.temporal.stack_channels`).
        ``members``: also each fold's prediction; ``probabilities``: keep
        ``float16`` class probabilities; ``measure``: tasks to make
        disagreement and uncertainty maps for.
        """
        channels = image[None] if image.ndim == 2 else image
        if channels.ndim != 3 or len(channels) != self.temporal.n_channels:
            expected = ("a 2-D grey image" if not self.temporal.enabled else
                        f"{self.temporal.n_channels} input channels (channels, rows, cols): the scene, then its "
                        f"{self.temporal.previous} previous and {self.temporal.next} next acquisitions")
            raise ValueError(f"expected {expected}, got shape {image.shape}")
        unknown = set(measure) - {task.name for task in self.tasks}
        if unknown:
            raise ValueError(f"cannot measure tasks {sorted(unknown)}: the model predicts "
                             f"{[task.name for task in self.tasks]}")
        if self.low_memory:
            map_large_allocations()
        data, (crop_rows, crop_cols) = self._preprocess(channels)
        assembler = _SceneAssembler((channels.shape[1], channels.shape[2]), crop_cols, self.tasks, len(self.folds),
                                    members=members, probabilities=probabilities, measure=measure)
        padded, (valid_rows, valid_cols) = _pad_to_patch(data, self.nnunet.configuration_manager.patch_size)
        task_classes = [task.n_classes for task in self.tasks]

        def scene_rows(first: int, end: int) -> tuple[slice, slice]:
            """Of padded rows ``[first, end)``: those holding the image, counted from ``first`` and in the scene."""
            start, stop = (min(max(row, valid_rows.start), valid_rows.stop) for row in (first, end))
            offset = crop_rows.start - valid_rows.start
            return slice(start - first, stop - first), slice(start + offset, stop + offset)

        average_probabilities = bool(self.nnunet.configuration_manager.configuration.get(AVERAGE_PROBABILITIES))
        for band in stream_bands(self.nnunet, padded, progress=self.tile_progress,
                                 average_probabilities=average_probabilities):
            assembler.begin_band(scene_rows(band.first, band.end)[1])
            for fold, first, end, logits in band.fold_logits():
                within, rows = scene_rows(first, end)
                if rows.start < rows.stop:
                    joint = torch.softmax(logits[:, within, valid_cols], 0).numpy()
                    assembler.add(fold, rows, task_probabilities(joint, task_classes))
            assembler.end_band()
        return assembler.result()

    def _preprocess(self, channels: np.ndarray) -> tuple[torch.Tensor, tuple[slice, slice]]:
        """nnU-Net's preprocessing of a scene's input channels ``(channels, rows, cols)``: the data
        ``(channels, rows, cols)`` of the non-zero crop (pixels non-zero in any channel), and the crop's rows and
        columns in the scene."""
        nn = self.nnunet
        preprocessor = nn.configuration_manager.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(channels[:, None], None, {"spacing": NNUNET_SPACING},
                                                        nn.plans_manager, nn.configuration_manager, nn.dataset_json)
        (_, _), (row0, row1), (col0, col1) = properties["bbox_used_for_cropping"]
        if tuple(data.shape[2:]) != (row1 - row0, col1 - col0):
            raise ModelError(self.model_dir, f"the plans resample images ({row1 - row0} x {col1 - col0} px -> "
                                             f"{' x '.join(map(str, data.shape[2:]))} px); prediction supports "
                                             "models planned at the images' own pixel grid (spacing 1)")
        return torch.from_numpy(data[:, 0]), (slice(row0, row1), slice(col0, col1))


def _pad_to_patch(data: torch.Tensor, patch: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """``data`` ``(channels, rows, cols)`` zero-padded to at least ``patch`` as nnU-Net pads, and the rows and
    columns of the padded data that hold ``data``."""
    from acvl_utils.cropping_and_padding.padding import pad_nd_image

    padded, slicer = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
    return padded, (slicer[-2], slicer[-1])


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
    """Write a scene's per-task PNGs (and, with ``save_probabilities``, its probabilities) atomically."""
    if save_probabilities and not prediction.probabilities:
        raise ValueError(f"{stem}: the prediction holds no probabilities to save; predict with probabilities=True")
    for task in prediction.class_maps:
        write_png(out_dir / f"{stem}{TASKS[task].suffix}.png", prediction.png(task))
    if save_probabilities:
        with atomic_path(out_dir / f"{stem}_probabilities.npz") as tmp:
            with open(tmp, "wb") as handle:
                # mypy checks the unpacked arrays against the stub's allow_pickle: bool keyword, too
                np.savez_compressed(handle, **prediction.probabilities)  # type: ignore[arg-type]


#: The file beside a temporal model's predictions that names each scene's context acquisitions, as export
#: records them (:func:`~nnunet_glacier.data.temporal.export_record`).
CONTEXT_RECORD = "temporal_context.json"


def scene_stem(image: Path) -> str:
    """The scene stem of an image file: its stem without nnU-Net's channel suffix ``_0000``."""
    return image.stem.removesuffix(temporal.channel_suffix(0))


def scene_contexts(images: Sequence[Path], settings: temporal.TemporalSettings
                   ) -> tuple[dict[Path, temporal.SceneContext], list[tuple[Path, str]]]:
    """Each image's context among ``images`` (:func:`~nnunet_glacier.data.temporal.select_context`), and the
    images left out because their names are not CaFFe names, as ``(file, problem)``."""
    names: dict[Path, SceneName] = {}
    failed: list[tuple[Path, str]] = []
    for path in images:
        try:
            names[path] = SceneName.parse(scene_stem(path), path)
        except InputError as err:
            failed.append((path, problem_of(err, path)))
    chosen = temporal.select_context(map(temporal.Acquisition.of, names.values()), settings)
    return {path: chosen[name.stem] for path, name in names.items()}, failed


def predict_images(predictor: GlacierPredictor, images: list[Path], out_dir: str | Path, *,
                   per_fold: bool = False, save_probabilities: bool = False,
                   progress: bool = True) -> RunReport:
    """Predict PNG scenes into ``out_dir`` (ensemble) and, with ``per_fold``, ``out_dir/fold_K``.

    Scenes whose outputs all exist are skipped (re-runs resume); a scene that
    fails (unreadable file, ...) is recorded in the report and the others go on.
    For a model with temporal context, each scene's context comes from
    ``images`` themselves (CaFFe names give glacier and date: pass one split's
    images, :func:`scene_contexts`); which acquisitions feed each scene is
    written to ``out_dir/``:data:`CONTEXT_RECORD`.
    """
    out_dir = Path(out_dir)
    fold_dirs = [out_dir / fold_member(k) for k in predictor.folds] if per_fold else []
    report = RunReport()
    contexts: dict[Path, temporal.SceneContext] = {}
    if predictor.temporal.enabled:
        contexts, report.failed = scene_contexts(images, predictor.temporal)
        write_json(out_dir / CONTEXT_RECORD,
                   temporal.export_record(predictor.temporal, {c.stem: c for c in contexts.values()}))
    files = {context.stem: path for path, context in contexts.items()}
    for image_path in tqdm(images, desc=f"predict {predictor.model_dir.name}", disable=not progress):
        if predictor.temporal.enabled and image_path not in contexts:
            continue  # its name is not CaFFe's: in the report's failures
        stem = scene_stem(image_path)
        expected = [p for d in [out_dir, *fold_dirs] for p in output_paths(d, stem, predictor.tasks,
                                                                            save_probabilities)]
        if all(p.is_file() for p in expected):
            report.skipped.append(stem)
            continue
        try:
            image = read_grey(image_path)
            if image_path in contexts:
                image = temporal.stack_channels(image, [files[stem] for stem in contexts[image_path].channels])
            prediction = predictor.predict(image, members=per_fold, probabilities=save_probabilities)
        except (InputError, ValueError) as err:
            report.failed.append((image_path, problem_of(err, image_path)))
            continue
        write_prediction(prediction, out_dir, stem, save_probabilities)
        for fold_dir, member in zip(fold_dirs, prediction.members):
            write_prediction(member, fold_dir, stem, save_probabilities)
        report.written.append(stem)
    return report

