"""Export a CaFFe root to an nnU-Net v2 raw dataset for one experiment.

Output (``<nnUNet_raw>/Dataset<ID>_<Name>/``)::

    imagesTr/<stem>_0000.png   SAR image of every train-split scene (8-bit grey)
    labelsTr/<stem>.png        the experiment's label (see Experiment.build_label)
    imagesTs/<stem>_0000.png   SAR image of every test-split scene
    dataset.json               nnU-Net's description, plus a ``caffe`` block

An experiment with temporal context (``Experiment.temporal``) adds the
channels ``<stem>_0001.png`` ... of each scene: other acquisitions of its
glacier from its own split, resized to its shape
(:mod:`nnunet_glacier.data.temporal`), named in ``channel_names``.

The ``caffe`` block records the source root, the experiment's tasks and label
settings and each case's pixel size in metres, so later steps need not guess;
with temporal context also, per scene, which acquisitions fill its channels
(``caffe.temporal``: settings and ``scenes``, see
:func:`~nnunet_glacier.data.temporal.export_record`).
Nothing in ``dataset.json`` names the experiment: experiments that share a
dataset (``mtl_late`` and ``mtl_early``; ``fused`` and the ``stock_fused``
baseline) export the same one.
Export is deterministic, parallel over files and never touches the input.
It writes a new folder beside the dataset (``dataset.json`` last) that
replaces the old one only when every file was written
(:func:`~nnunet_glacier.utilities.atomic.atomic_folder`): an export that fails — a
corrupt input, a kill — leaves the previous good export as it was.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from nnunet_glacier.data import caffe, temporal
from nnunet_glacier.data.experiments import Experiment
from nnunet_glacier.errors import InputError
from nnunet_glacier.utilities.atomic import atomic_folder, remove_stale_temporaries, write_json, write_png

CHANNEL_SUFFIX = temporal.channel_suffix(0)  # of the scene's own image; its context follows in _0001, ...


def dataset_folder(raw_root: str | Path, experiment: Experiment) -> Path:
    return Path(raw_root) / experiment.dataset


def _export_one(job: tuple[caffe.Sample, Experiment, Path, tuple[Path, ...]]) -> None:
    """Write one scene's channel files (its image, then its ``context`` images resized to it) and, for a
    training scene, its label."""
    sample, experiment, folder, context = job
    loaded = caffe.load_sample(sample)
    images = folder / ("imagesTr" if sample.split == "train" else "imagesTs")
    for index, channel in enumerate(temporal.stack_channels(loaded.image, context)):
        write_png(images / f"{sample.stem}{temporal.channel_suffix(index)}.png", channel)
    if sample.split == "train":
        # export_dataset discovers the samples with require_labels: every one has its labels
        assert loaded.zones is not None and loaded.front is not None, sample.image
        write_png(folder / "labelsTr" / f"{sample.stem}.png", experiment.build_label(loaded.zones, loaded.front))


def _check_dataset_id_free(raw_root: Path, experiment: Experiment) -> None:
    prefix = f"Dataset{experiment.dataset_id:03d}_"
    for other in raw_root.glob(prefix + "*"):
        if other.name != experiment.dataset:
            raise InputError(other, f"dataset ID {experiment.dataset_id} is taken by another dataset; "
                                    f"nnU-Net needs unique IDs (expected {experiment.dataset})")


def dataset_json(experiment: Experiment, samples: list[caffe.Sample], source: Path) -> dict:
    """nnU-Net's dataset.json for ``samples``, with our ``caffe`` block (and its ``temporal`` record when the
    experiment takes temporal context)."""
    block: dict[str, object] = {
        "source": str(source),
        "tasks": list(experiment.tasks),
        "task_classes": list(experiment.task_classes),
        "label_settings": asdict(experiment.labels),
        "pixel_size_m": caffe.pixel_size_record(samples),
        "test_cases": sorted(s.stem for s in samples if s.split != "train"),
    }
    if experiment.temporal.enabled:
        block["temporal"] = temporal.export_record(experiment.temporal,
                                                   temporal.contexts_by_split(samples, experiment.temporal))
    return {
        "name": experiment.dataset_name,
        "description": f"CaFFe exported by nnunet_glacier; tasks: {', '.join(experiment.tasks)}",
        "channel_names": temporal.channel_names(experiment.temporal),
        "labels": experiment.label_names(),
        "numTraining": sum(s.split == "train" for s in samples),
        "file_ending": ".png",
        "caffe": block,
    }


def export_dataset(data_root: str | Path, experiment: Experiment, raw_root: str | Path, *,
                   pixel_size: caffe.PixelSize = None, num_workers: int | None = None,
                   progress: bool = True) -> Path:
    """Write the nnU-Net raw dataset of ``experiment`` from the CaFFe root ``data_root``.

    ``pixel_size`` overrides the names' resolutions (metres per pixel: one
    number, or a mapping stem -> metres). The dataset folder is replaced as
    a whole, and only once the new export is complete. Returns the dataset folder.
    """
    data_root, raw_root = Path(data_root).resolve(), Path(raw_root)
    samples = caffe.discover(data_root, pixel_size=pixel_size)
    if not any(s.split == "train" for s in samples):
        raise InputError(data_root, "no training images in sar_images/train")
    raw_root.mkdir(parents=True, exist_ok=True)
    _check_dataset_id_free(raw_root, experiment)
    remove_stale_temporaries(raw_root)
    folder = dataset_folder(raw_root, experiment)
    contexts = temporal.contexts_by_split(samples, experiment.temporal)
    images = {s.stem: s.image for s in samples}
    with atomic_folder(folder) as new:
        jobs = [(s, experiment, new, tuple(images[stem] for stem in contexts[s.stem].channels)) for s in samples]
        workers = num_workers if num_workers is not None else min(len(jobs), os.cpu_count() or 1)
        description = f"export {experiment.dataset}"
        if workers <= 1:
            for job in tqdm(jobs, desc=description, disable=not progress):
                _export_one(job)
        else:
            with ProcessPoolExecutor(workers) as pool:
                list(tqdm(pool.map(_export_one, jobs, chunksize=4), total=len(jobs), desc=description,
                          disable=not progress))
        write_json(new / "dataset.json", dataset_json(experiment, samples, data_root))
    return folder
