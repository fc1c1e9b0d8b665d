"""Export a CaFFe root to an nnU-Net v2 raw dataset for one experiment.

Output (``<nnUNet_raw>/Dataset<ID>_<Name>/``)::

    imagesTr/<stem>_0000.png   SAR image of every train-split scene (8-bit grey)
    labelsTr/<stem>.png        the experiment's label (see Experiment.build_label)
    imagesTs/<stem>_0000.png   SAR image of every test-split scene
    dataset.json               nnU-Net's description, plus a ``caffe`` block

The ``caffe`` block records the source root, the experiment's tasks and label
settings and each case's pixel size in metres, so later steps need not guess.
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

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from nnunet_glacier.data import caffe
from nnunet_glacier.data.experiments import Experiment
from nnunet_glacier.errors import InputError
from nnunet_glacier.utilities.atomic import atomic_folder, remove_stale_temporaries, write_json, write_png

CHANNEL_SUFFIX = "_0000"


def dataset_folder(raw_root: str | Path, experiment: Experiment) -> Path:
    return Path(raw_root) / experiment.dataset


def _export_one(job: tuple[caffe.Sample, Experiment, Path]) -> None:
    sample, experiment, folder = job
    loaded = caffe.load_sample(sample)
    if sample.split == "train":
        write_png(folder / "imagesTr" / f"{sample.stem}{CHANNEL_SUFFIX}.png", loaded.image)
        write_png(folder / "labelsTr" / f"{sample.stem}.png", experiment.build_label(loaded.zones, loaded.front))
    else:
        write_png(folder / "imagesTs" / f"{sample.stem}{CHANNEL_SUFFIX}.png", loaded.image)


def _check_dataset_id_free(raw_root: Path, experiment: Experiment) -> None:
    prefix = f"Dataset{experiment.dataset_id:03d}_"
    for other in raw_root.glob(prefix + "*"):
        if other.name != experiment.dataset:
            raise InputError(other, f"dataset ID {experiment.dataset_id} is taken by another dataset; "
                                    f"nnU-Net needs unique IDs (expected {experiment.dataset})")


def dataset_json(experiment: Experiment, samples: list[caffe.Sample], source: Path) -> dict:
    """nnU-Net's dataset.json for ``samples``, with our ``caffe`` block."""
    return {
        "name": experiment.dataset_name,
        "description": f"CaFFe exported by nnunet_glacier; tasks: {', '.join(experiment.tasks)}",
        "channel_names": {"0": "SAR"},
        "labels": experiment.label_names(),
        "numTraining": sum(s.split == "train" for s in samples),
        "file_ending": ".png",
        "caffe": {
            "source": str(source),
            "tasks": list(experiment.tasks),
            "task_classes": list(experiment.task_classes),
            "label_settings": asdict(experiment.labels),
            "pixel_size_m": {s.stem: s.pixel_size_m for s in samples},
            "test_cases": sorted(s.stem for s in samples if s.split != "train"),
        },
    }


def dataset_json_file(dataset: str | Path) -> Path:
    """The ``dataset.json`` of a raw dataset given as its folder or as the file itself."""
    path = Path(dataset)
    return path / "dataset.json" if path.is_dir() else path


def recorded_pixel_sizes(dataset: str | Path) -> dict[str, float]:
    """The pixel size (metres) of each case as export recorded it in a raw dataset's ``dataset.json``.

    ``dataset`` is the dataset folder or its ``dataset.json``; a file that is
    missing, unreadable or holds no ``caffe.pixel_size_m`` record raises
    :class:`InputError` naming it.
    """
    path = dataset_json_file(dataset)
    try:
        sizes = json.loads(path.read_text())["caffe"]["pixel_size_m"]
        return {str(stem): float(size) for stem, size in sizes.items()}
    except FileNotFoundError as err:
        raise InputError(path, "file not found: not an exported raw dataset") from err
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(path, f"no pixel sizes recorded by nnunet_glacier's export ({err!r})") from err


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
    with atomic_folder(folder) as new:
        jobs = [(s, experiment, new) for s in samples]
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
