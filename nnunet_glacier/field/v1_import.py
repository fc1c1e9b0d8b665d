"""Import trained nnU-Net v1 models (such as the paper's published fused-label model) as nnU-Net v2 models.

The paper's authors trained with nnU-Net v1 (``nnUNetTrainerV2``, plans
``nnUNetPlansv2.1``, 2-D). :func:`import_v1_model` turns such a trained-model
folder into an installed model of ours, so ``detect -m NAME`` runs it through
nnU-Net v2's own predictor.

Accepted sources: a v1 model folder in any of its usual layouts —
``<...>/TaskNNN_Name/nnUNetTrainerV2__nnUNetPlansv2.1/`` holding ``fold_K/``,
one ``fold_K/`` folder, the Hugging Face Space's ``TaskNNN_Name/fold_K/`` or
any folder above them holding exactly one model — or a zip of one. Each fold
needs ``model_final_checkpoint.model`` (``torch.save`` of a dict with the
network's ``state_dict``) and ``model_final_checkpoint.model.pkl`` (a pickle
of the trainer's ``init``, ``name``, ``class`` and ``plans``); a
``plans.pkl`` beside the folds, when there, is checked as well.

What is mapped and how it is checked:

- the topology comes from the checkpoint's own tensor shapes: features per
  stage, kernel sizes and convolutions per stage from the convolution
  weights, strides from the transposed convolutions' kernels (v1 up-samples
  with a transposed convolution whose kernel equals the stride), classes from
  the segmentation heads; it must agree with the plans (pool and convolution
  kernel sizes, base features, convolutions per stage, classes);
- normalisation and non-linearity are what ``nnUNetTrainerV2`` builds
  (InstanceNorm eps 1e-5 affine, LeakyReLU slope 0.01): trainers of another
  name are refused, since their settings cannot be read from a checkpoint;
- the v2 network is nnU-Net v2's ``PlainConvUNet`` with that topology; every
  v1 tensor goes to exactly one v2 tensor of the same shape. v1 has no bias in
  its up-sampling and segmentation heads, v2 has: those biases are zero;
- preprocessing: z-score per image (v1's ``nonCT`` scheme) after cropping to
  the non-zero region, spacing ignored (no resampling; v2 configuration
  spacing ``[1, 1]``), test-time mirroring over both axes. One difference is
  nnU-Net's own and stays: v1's sliding window averages the softmax
  probabilities of mirrored copies and overlapping tiles, v2's their logits;
- refused with a :class:`~nnunet_glacier.errors.ModelError` naming the file:
  3-D models, cascades, several input channels, other normalisation schemes,
  multi-task models of the authors' fork (``num_classes`` a list of several
  tasks) and any model whose heads do not give the 5 fused classes
  (0 NA, 1 rock, 2 glacier, 3 ocean, 4 front).

What is trusted: nothing in the v1 files runs as code. Pickles are read with
an unpickler that builds only plain data (Python's built-in containers,
``collections.OrderedDict``, numpy arrays, scalars and dtypes:
:data:`ALLOWED_GLOBALS`), checkpoints with ``torch.load(weights_only=True)``
and the same allow-list; anything else in them is refused.
"""
from __future__ import annotations

import codecs
import hashlib
import importlib
import io
import pickle
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier.data.tasks import TASKS
from nnunet_glacier.errors import ModelError
from nnunet_glacier.field.models import (
    CHECKPOINT,
    already_installed,
    check_name,
    extract_zip,
    installing,
    model_folder_in,
    models_dir,
    sha256_of,
    write_model_card,
)
from nnunet_glacier.utilities.atomic import atomic_path, write_json

V1_CHECKPOINT = "model_final_checkpoint.model"
V1_INFO = V1_CHECKPOINT + ".pkl"
V1_PLANS = "plans.pkl"
V1_TRAINER = "nnUNetTrainerV2"
#: The v2 trainer whose network builder (from the plans) the predictor uses; v2's stock trainer.
V2_TRAINER = "nnUNetTrainer"
V2_PLANS = "nnUNetPlansFromV1"
CONFIGURATION = "2d"
EXPERIMENT = "fused"
#: The task of the fused-label model Herrmann et al. (2023) published (Zenodo record 7837300).
PAPER_TASK = "Task500_Glacier_zonefronts"
_TASK = re.compile(r"^Task(\d+)_(\w+)$")
#: nnUNetTrainerV2's fixed network settings (not stored in its checkpoints).
NORM_EPS = 1e-5
LEAKY_SLOPE = 1e-2


# numpy 2 / numpy 1 (imported by name: numpy 2's stubs know no numpy.core.multiarray)
_MULTIARRAY = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")


def _numpy_dtype_classes() -> list[type]:
    """Numpy's dtype classes (``numpy.dtypes``, numpy >= 1.25), which pickles of numpy 2 refer to."""
    return [value for value in vars(getattr(np, "dtypes", object())).values()
            if isinstance(value, type) and issubclass(value, np.dtype)]


#: What the unpickler may build, by the module and name a pickle refers to them with (numpy 1 and 2 spellings).
ALLOWED_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set, "builtins.frozenset": frozenset, "builtins.slice": slice, "builtins.complex": complex,
    "_codecs.encode": codecs.encode,  # bytes in protocol-2 pickles
    "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype,
    **{f"numpy.{core}.multiarray.{name}": getattr(_MULTIARRAY, name)
       for core in ("core", "_core") for name in ("_reconstruct", "scalar")},
    **{f"numpy.dtypes.{cls.__name__}": cls for cls in _numpy_dtype_classes()},
}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[f"{module}.{name}"]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not plain data") from None


def load_plain_pickle(path: Path) -> Any:
    """A pickle of plain data (see :data:`ALLOWED_GLOBALS`); :class:`ModelError` naming it otherwise."""
    try:
        return _PlainDataUnpickler(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError as err:
        raise ModelError(path, "file not found") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, OSError) as err:
        raise ModelError(path, f"not a readable pickle of plain data ({err})") from err


def load_v1_checkpoint(path: Path) -> dict[str, Any]:
    """A v1 ``.model`` checkpoint, loaded without running code (``weights_only`` plus :data:`ALLOWED_GLOBALS`)."""
    import torch

    try:
        with torch.serialization.safe_globals([(obj, full_name) for full_name, obj in ALLOWED_GLOBALS.items()]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ModelError(path, "file not found") from err
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise ModelError(path, f"not a readable nnU-Net v1 checkpoint ({str(err).splitlines()[0]})") from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ModelError(path, "not an nnU-Net v1 checkpoint: no 'state_dict'")
    return checkpoint


# --- finding the model ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class V1Fold:
    """One trained fold of a v1 model: its number and its ``fold_K`` folder."""

    fold: int
    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / V1_CHECKPOINT

    @property
    def info(self) -> Path:
        return self.folder / V1_INFO


@dataclass(frozen=True)
class V1Model:
    """A v1 trained-model folder (the one holding ``fold_K/``) and the folds to import, in order."""

    folder: Path
    folds: tuple[V1Fold, ...]

    @property
    def plans_file(self) -> Path | None:
        """The model's ``plans.pkl``, if it has one (the Space's layout has none)."""
        path = self.folder / V1_PLANS
        return path if path.is_file() else None

    def files(self) -> list[Path]:
        """The files the import reads: every fold's checkpoint and its ``.pkl``, and ``plans.pkl``."""
        files = [path for fold in self.folds for path in (fold.checkpoint, fold.info)]
        return files + ([self.plans_file] if self.plans_file else [])


def find_v1_model(source: Path, folds: list[int] | None = None) -> V1Model:
    """The v1 model in a folder (see the module doc for the layouts); ``folds`` default to every trained fold."""
    from nnunet_glacier.nnunet.predict import folder_contents

    if not source.is_dir():
        raise ModelError(source, "not found: expected an nnU-Net v1 trained-model folder or a zip of one")
    checkpoints = [source / V1_CHECKPOINT] if (source / V1_CHECKPOINT).is_file() \
        else sorted(source.rglob(f"fold_*/{V1_CHECKPOINT}"))
    if not checkpoints:
        raise ModelError(source, f"no fold_K/{V1_CHECKPOINT}: not an nnU-Net v1 trained-model folder (it holds "
                                 f"{folder_contents(source)})")
    models = sorted({str(path.parent.parent) for path in checkpoints})
    if len(models) > 1:
        raise ModelError(source, f"holds {len(models)} nnU-Net v1 models ({', '.join(models)}); give one of them")
    found = {}
    for path in checkpoints:
        number = path.parent.name.removeprefix("fold_")
        if path.parent.name == number or not number.isdigit():
            raise ModelError(path.parent, "a v1 fold folder must be named fold_K (K = 0, 1, ...)")
        found[int(number)] = V1Fold(int(number), path.parent)
    wanted = sorted(found) if folds is None else sorted(folds)
    missing = [k for k in wanted if k not in found]
    if missing:
        raise ModelError(source, f"no fold {', '.join(map(str, missing))}; it has folds {sorted(found)}")
    for fold in wanted:
        if not found[fold].info.is_file():
            raise ModelError(found[fold].info, f"missing: every v1 fold has {V1_INFO} (its trainer and plans) "
                                               f"beside {V1_CHECKPOINT}")
    return V1Model(checkpoints[0].parent.parent, tuple(found[k] for k in wanted))


# --- topology ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topology:
    """A v1 Generic_UNet's topology as nnU-Net v2 ``PlainConvUNet`` arguments.

    Stage 0 is full resolution; ``strides[0]`` is ``(1, 1)`` and
    ``strides[s]`` the down-sampling into stage ``s`` (pixels per pixel,
    per axis); ``features_per_stage`` are channels.
    """

    input_channels: int
    num_classes: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    n_conv_per_stage: tuple[int, ...]
    n_conv_per_stage_decoder: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)


def _stage_count(state: dict[str, Any], prefix: str, path: Path) -> int:
    indices = {key[len(prefix):].split(".")[0] for key in state if key.startswith(prefix)}
    if not indices or indices != {str(i) for i in range(len(indices))}:
        raise ModelError(path, f"no {prefix}<N> tensors numbered 0, 1, ...: not the network (Generic_UNet) of "
                               f"an nnU-Net v1 trainer")
    return len(indices)


def _conv_weights(state: dict[str, Any], prefix: str) -> list[Any]:
    """The convolution weights under ``prefix``, in the network's order."""
    return [value for key, value in state.items() if key.startswith(prefix) and key.endswith(".conv.weight")]


def _tensor(state: dict[str, Any], key: str, path: Path) -> Any:
    if key not in state:
        raise ModelError(path, f"no tensor {key}: not the network (Generic_UNet with convolutional up-sampling) "
                               f"that {V1_TRAINER} builds")
    return state[key]


def topology_of(state: dict[str, Any], path: Path) -> Topology:
    """The topology of a v1 Generic_UNet from its ``state_dict``'s tensor shapes (``path`` names it in errors)."""
    n_stages = _stage_count(state, "conv_blocks_context.", path)
    encoder = [_conv_weights(state, f"conv_blocks_context.{s}.") for s in range(n_stages)]
    decoder = [_conv_weights(state, f"conv_blocks_localization.{u}.") for u in range(n_stages - 1)]
    if not all(encoder) or not all(decoder):
        raise ModelError(path, f"a stage without convolutions: not the network (Generic_UNet) that {V1_TRAINER} "
                               f"builds")
    first = encoder[0][0]
    if first.ndim == 5:
        raise ModelError(path, f"a 3-D model (3-D convolution weights of shape {tuple(first.shape)}): only 2-D "
                               f"models can be imported")
    if first.ndim != 4:
        raise ModelError(path, f"convolution weights of shape {tuple(first.shape)}: not a 2-D U-Net")
    heads = [_tensor(state, f"seg_outputs.{u}.weight", path) for u in range(n_stages - 1)]
    up = [_tensor(state, f"tu.{u}.weight", path) for u in range(n_stages - 1)]  # tu[0] up-samples the bottleneck
    return Topology(
        input_channels=int(first.shape[1]),
        num_classes=int(heads[-1].shape[0]),
        features_per_stage=tuple(int(convs[0].shape[0]) for convs in encoder),
        kernel_sizes=tuple(tuple(int(k) for k in convs[0].shape[2:]) for convs in encoder),
        strides=((1, 1), *(tuple(int(k) for k in up[n_stages - 1 - s].shape[2:]) for s in range(1, n_stages))),
        n_conv_per_stage=tuple(len(convs) for convs in encoder),
        n_conv_per_stage_decoder=tuple(len(convs) for convs in decoder),
    )


def _plans_entry(plans: Any, key: str, path: Path) -> Any:
    try:
        return plans[key]
    except (KeyError, TypeError, IndexError):
        raise ModelError(path, f"not nnU-Net v1 plans: no {key!r}") from None


def plans_stage(plans: Any, path: Path) -> dict[str, Any]:
    """The one stage of 2-D v1 plans (``plans_per_stage``); :class:`ModelError` for cascades and 3-D plans."""
    stages = _plans_entry(plans, "plans_per_stage", path)
    if len(stages) != 1:
        raise ModelError(path, f"plans of {len(stages)} stages (a cascade): only single-stage 2-D models can be "
                               f"imported")
    stage = next(iter(stages.values()))
    patch = _plans_entry(stage, "patch_size", path)
    if len(patch) != 2:
        raise ModelError(path, f"patch size {[int(p) for p in patch]}: a 3-D model; only 2-D models can be imported")
    return stage


def _int_lists(values: Any) -> list[list[int]]:
    return [[int(v) for v in value] for value in values]


def check_plans(topology: Topology, plans: Any, path: Path) -> None:
    """Check v1 plans against a checkpoint's topology and against what the import supports (names ``path``)."""
    stage = plans_stage(plans, path)
    num_classes = _plans_entry(plans, "num_classes", path)
    if isinstance(num_classes, (list, tuple)):
        if len(num_classes) != 1:
            raise ModelError(path, f"num_classes {list(num_classes)}, one entry per task: a multi-task model of "
                                   f"the authors' fork; only single-task (fused-label) models can be imported")
        num_classes = num_classes[0]
    conv_per_stage = int(plans.get("conv_per_stage", 2))
    agree = {
        "classes (num_classes + background)": (int(num_classes) + 1, topology.num_classes),
        "input channels (num_modalities)": (int(_plans_entry(plans, "num_modalities", path)), topology.input_channels),
        "base_num_features": (int(_plans_entry(plans, "base_num_features", path)), topology.features_per_stage[0]),
        "pool_op_kernel_sizes": (_int_lists(_plans_entry(stage, "pool_op_kernel_sizes", path)),
                                 [list(s) for s in topology.strides[1:]]),
        "conv_kernel_sizes": (_int_lists(_plans_entry(stage, "conv_kernel_sizes", path)),
                              [list(k) for k in topology.kernel_sizes]),
        "convolutions per stage (conv_per_stage)": (
            [conv_per_stage] * (2 * topology.n_stages - 1),
            [*topology.n_conv_per_stage, *topology.n_conv_per_stage_decoder]),
    }
    for what, (in_plans, in_checkpoint) in agree.items():
        if in_plans != in_checkpoint:
            raise ModelError(path, f"{what}: {in_plans} in the plans but {in_checkpoint} in the checkpoint's "
                                   f"network")
    schemes = list(_plans_entry(plans, "normalization_schemes", path).values())
    if schemes != ["nonCT"]:
        raise ModelError(path, f"normalization schemes {schemes}: only one channel with z-score normalisation "
                               f"(v1's 'nonCT') can be imported")
    transpose = [int(axis) for axis in plans.get("transpose_forward", (0, 1, 2))]
    if transpose != [0, 1, 2]:
        raise ModelError(path, f"transpose_forward {transpose}: only untransposed 2-D models ([0, 1, 2]) can be "
                               f"imported")


def check_fused(topology: Topology, path: Path) -> None:
    """The import serves fused-label models: 5 classes, one input channel."""
    fused = TASKS[EXPERIMENT]
    if topology.num_classes != fused.n_classes:
        names = ", ".join(f"{index} {name}" for index, name in enumerate(fused.class_names))
        raise ModelError(path, f"{topology.num_classes} output classes in the segmentation heads: only fused-label "
                               f"models ({fused.n_classes} classes: {names}) can be imported")
    if topology.input_channels != 1:
        raise ModelError(path, f"{topology.input_channels} input channels: only single-channel (grey SAR) models "
                               f"can be imported")


@dataclass(frozen=True)
class V1Network:
    """One fold's network as v1 saved it: topology, ``state_dict`` (tensors by v1 name), epochs trained, and the
    plans of its ``.pkl`` (``info``)."""

    topology: Topology
    state_dict: dict[str, Any]
    epoch: int | None
    plans: dict[str, Any]
    info: Path

    @property
    def stage(self) -> dict[str, Any]:
        """The plans' one stage (checked by :func:`read_fold`)."""
        return plans_stage(self.plans, self.info)


def read_fold(fold: V1Fold) -> V1Network:
    """Read and check one v1 fold: its trainer, its network's topology and its plans."""
    info = load_plain_pickle(fold.info)
    if not isinstance(info, dict) or "plans" not in info:
        raise ModelError(fold.info, "not the .pkl nnU-Net v1 writes beside a checkpoint: no 'plans'")
    if info.get("name") != V1_TRAINER:
        raise ModelError(fold.info, f"trainer {info.get('name')!r}: only {V1_TRAINER} models can be imported "
                                    f"(other trainers' network settings are not stored in their files)")
    checkpoint = load_v1_checkpoint(fold.checkpoint)
    topology = topology_of(checkpoint["state_dict"], fold.checkpoint)
    check_plans(topology, info["plans"], fold.info)
    check_fused(topology, fold.checkpoint)
    epoch = checkpoint.get("epoch")
    return V1Network(topology, checkpoint["state_dict"], int(epoch) if epoch is not None else None, info["plans"],
                     fold.info)


# --- the v2 model --------------------------------------------------------------------------------------------------

def dataset_name(model: V1Model, plans: dict[str, Any]) -> str:
    """The v2 dataset folder name, ``DatasetNNN_Name``, from the v1 task (``TaskNNN_Name``) in the model's path or
    in the plans' preprocessed-data folder; ``Dataset999_ImportedV1`` when neither names one."""
    task = task_name(model, plans)
    match = _TASK.match(task or "")
    return f"Dataset{int(match.group(1)):03d}_{match.group(2)}" if match else "Dataset999_ImportedV1"


def task_name(model: V1Model, plans: dict[str, Any]) -> str | None:
    """The v1 task (``TaskNNN_Name``) the model was trained on, if its path or plans name it."""
    parts = [*model.folder.parts, *Path(str(plans.get("preprocessed_data_folder", ""))).parts]
    return next((part for part in reversed(parts) if _TASK.match(part)), None)


def v2_plans(v1: V1Network, dataset: str) -> dict[str, Any]:
    """nnU-Net v2 plans with one configuration, ``2d``, reproducing the v1 network, preprocessing and averaging
    (of class probabilities over mirrored copies and tiles, :data:`~nnunet_glacier.nnunet.predict.AVERAGE_PROBABILITIES`)."""
    from nnunet_glacier.nnunet.predict import AVERAGE_PROBABILITIES

    topology, stage = v1.topology, v1.stage
    median = [int(size) for size in _plans_entry(stage, "median_patient_size_in_voxels", v1.info)][-2:]
    use_mask = [bool(value) for value in _plans_entry(v1.plans, "use_mask_for_norm", v1.info).values()]
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    configuration = {
        "data_identifier": f"{V2_PLANS}_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        AVERAGE_PROBABILITIES: True,
        "batch_size": int(_plans_entry(stage, "batch_size", v1.info)),
        "patch_size": [int(size) for size in stage["patch_size"]],
        "median_image_size_in_voxels": median,
        "spacing": [1.0, 1.0],  # v1 CaFFe models ignore the pixel size: no resampling
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": use_mask,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": resampling,
        "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": topology.n_stages,
                "features_per_stage": list(topology.features_per_stage),
                "conv_op": "torch.nn.modules.conv.Conv2d",
                "kernel_sizes": [list(k) for k in topology.kernel_sizes],
                "strides": [list(s) for s in topology.strides],
                "n_conv_per_stage": list(topology.n_conv_per_stage),
                "n_conv_per_stage_decoder": list(topology.n_conv_per_stage_decoder),
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
                "norm_op_kwargs": {"eps": NORM_EPS, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"negative_slope": LEAKY_SLOPE, "inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": True,
    }
    return {
        "dataset_name": dataset,
        "plans_name": V2_PLANS,
        "original_median_spacing_after_transp": [999.0, 1.0, 1.0],
        "original_median_shape_after_transp": [1, *median],
        "image_reader_writer": "NaturalImage2DIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": "nnU-Net v1 plans, imported by nnunet_glacier",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {}},  # z-score needs none
    }


def v2_dataset_json(dataset: str, n_training: int | None, imported_from: dict[str, Any]) -> dict[str, Any]:
    """nnU-Net v2's dataset.json for the imported fused-label model, with our ``caffe`` block."""
    from nnunet_glacier.data.experiments import get_experiment

    experiment = get_experiment(EXPERIMENT)
    return {
        "name": dataset.split("_", 1)[1],
        "description": f"nnU-Net v1 model imported by nnunet_glacier from {imported_from['source']}",
        "channel_names": {"0": "SAR"},
        "labels": experiment.label_names(),
        "numTraining": n_training,
        "file_ending": ".png",
        "caffe": {
            "source": "not recorded in the nnU-Net v1 model (see imported_from)",
            "tasks": list(experiment.tasks),
            "task_classes": list(experiment.task_classes),
            "experiment": {"name": experiment.name, "title": experiment.title, "profile": None},
            "imported_from": imported_from,
        },
    }


def v2_network(plans: dict[str, Any], dataset_json: dict[str, Any]) -> Any:
    """The network nnU-Net v2's predictor builds from these plans (``nnUNetTrainer``'s builder, no deep supervision)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    return nnUNetTrainer.build_network_architecture(
        manager, manager.get_configuration(CONFIGURATION), len(dataset_json["channel_names"]),
        manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)


def _v1_block(prefix: str, n_convs: int, index: int) -> str:
    """The v1 name of conv block ``index`` of a stage v1 stores as two stacks ((n - 1) convs, then 1)."""
    return f"{prefix}.0.blocks.{index}" if index < n_convs - 1 else f"{prefix}.1.blocks.0"


def v1_name(v2_name: str, topology: Topology) -> str:
    """The v1 Generic_UNet tensor that a v2 PlainConvUNet tensor (its name in ``named_parameters``) takes.

    Encoder stages are v1's ``conv_blocks_context`` (the last one, the
    bottleneck, stored as two stacks), decoder stages its
    ``conv_blocks_localization`` (two stacks each, deepest first, as in v2),
    transposed convolutions ``tu``, heads ``seg_outputs``; v2's ``norm`` is
    v1's ``instnorm``.
    """
    parts = v2_name.split(".")
    if parts[:2] == ["encoder", "stages"]:  # encoder.stages.S.0.convs.I.{conv,norm}.P
        stage, index, module, parameter = int(parts[2]), int(parts[5]), parts[6], parts[7]
        block = f"conv_blocks_context.{stage}.blocks.{index}" if stage < topology.n_stages - 1 \
            else _v1_block(f"conv_blocks_context.{stage}", topology.n_conv_per_stage[stage], index)
    elif parts[:2] == ["decoder", "stages"]:  # decoder.stages.U.convs.I.{conv,norm}.P
        stage, index, module, parameter = int(parts[2]), int(parts[4]), parts[5], parts[6]
        block = _v1_block(f"conv_blocks_localization.{stage}", topology.n_conv_per_stage_decoder[stage], index)
    elif parts[:2] == ["decoder", "transpconvs"]:
        return f"tu.{parts[2]}.{parts[3]}"
    elif parts[:2] == ["decoder", "seg_layers"]:
        return f"seg_outputs.{parts[2]}.{parts[3]}"
    else:
        raise ValueError(f"unexpected PlainConvUNet tensor {v2_name}")
    return f"{block}.{'instnorm' if module == 'norm' else module}.{parameter}"


def load_v1_weights(network: Any, v1: V1Network, path: Path) -> None:
    """Put the v1 tensors into the v2 network; biases v1 has none of (up-sampling, heads) become zero.

    Every v1 tensor must be used, and by one v2 tensor of the same shape;
    :class:`ModelError` naming ``path`` otherwise.
    """
    import torch

    used = set()
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            source = v1_name(name, v1.topology)
            if source not in v1.state_dict and name.endswith(".bias") and (".transpconvs." in name or
                                                                         ".seg_layers." in name):
                parameter.zero_()
                continue
            tensor = v1.state_dict.get(source)
            if tensor is None or tuple(tensor.shape) != tuple(parameter.shape):
                found = "missing" if tensor is None else f"of shape {tuple(tensor.shape)}"
                raise ModelError(path, f"{source} is {found}, but nnU-Net v2's PlainConvUNet needs "
                                       f"{tuple(parameter.shape)} for {name}: the network cannot be mapped")
            parameter.copy_(tensor)
            used.add(source)
    unused = [key for key in v1.state_dict if key not in used]
    if unused:
        raise ModelError(path, f"{len(unused)} tensors have no counterpart in nnU-Net v2's PlainConvUNet "
                               f"({', '.join(unused[:3])}{', ...' if len(unused) > 3 else ''}): not the network "
                               f"{V1_TRAINER} builds")


def v2_checkpoint(network: Any, plans: dict[str, Any], dataset_json: dict[str, Any], fold: int,
                  epoch: int | None) -> dict[str, Any]:
    """A ``checkpoint_final.pth`` as nnU-Net v2's trainer writes it (what its predictor reads)."""
    import torch

    return {
        "network_weights": network.state_dict(),
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": fold, "dataset_json": dataset_json,
                      "device": torch.device("cpu")},
        "trainer_name": V2_TRAINER,
        "inference_allowed_mirroring_axes": (0, 1),
        "current_epoch": epoch,
    }


# --- import --------------------------------------------------------------------------------------------------------

def provenance(model: V1Model, source: Path, networks: list[V1Network], hashes: dict[str, str]) -> dict[str, Any]:
    """The ``imported_from`` record (in ``dataset.json`` and the model card): source, files, what is known of the
    model and what is not."""
    first = networks[0]
    topology, stage, task = first.topology, first.stage, task_name(model, first.plans)
    cases = first.plans.get("list_of_npz_files")
    known = [
        f"network: nnU-Net v1 Generic_UNet, {topology.n_stages} stages of {list(topology.features_per_stage)} "
        f"features, kernels {[list(k) for k in topology.kernel_sizes]}, strides {[list(s) for s in topology.strides]}, "
        f"{topology.n_conv_per_stage[0]} convolutions per stage (read from the checkpoint's tensors, checked "
        f"against the plans)",
        f"trainer {V1_TRAINER}: InstanceNorm (eps {NORM_EPS:g}, affine), LeakyReLU (slope {LEAKY_SLOPE:g}), "
        f"strided-convolution down-sampling, transposed-convolution up-sampling, deep supervision in training",
        f"patch size {[int(p) for p in stage['patch_size']]} px, batch size {int(stage['batch_size'])}",
        "preprocessing: z-score per image after cropping to the non-zero region; the pixel size is ignored "
        "(no resampling); prediction: sliding window with Gaussian weighting and mirroring",
        "epochs trained: " + ", ".join(f"fold {fold.fold}: {net.epoch}" for fold, net in zip(model.folds, networks)),
    ]
    if cases:
        known.append(f"training cases: {len(cases)} (named in the v1 plans)")
    if task == PAPER_TASK:
        known.append(f"{PAPER_TASK} is the task of the fused-label model published by Herrmann et al. (2023), "
                     f"Zenodo record 7837300: trained on CaFFe's training split (Crane, Dinsmoor-Bombardier-"
                     f"Edgeworth, Jakobshavn Isbrae, Jorum, Sjogren-Inlet glaciers; 6 to 20 m pixels); the "
                     f"authors predict with fold 0 only")
    return {
        "format": "nnU-Net v1",
        "source": str(source.resolve()),
        "task": task,
        "v1_trainer": V1_TRAINER,
        "folds": [fold.fold for fold in model.folds],
        "sha256": hashes,
        "known": known,
        "not_known": [
            "validation scores and the cross-validation split: a v1 trained-model folder holds neither",
            "the pixel sizes of the training scenes",
            "where the training data came from, beyond what the task name says",
        ],
    }


def _file_hashes(model: V1Model) -> dict[str, str]:
    """SHA-256 of every file the import reads, by its path relative to the model folder."""
    return {str(path.relative_to(model.folder)): sha256_of(path) for path in model.files()}


def _hashes_digest(hashes: dict[str, str]) -> str:
    """One SHA-256 for a set of files (their paths and hashes): an import's identity, as a zip's hash is an install's."""
    return hashlib.sha256("\n".join(f"{path} {digest}" for path, digest in sorted(hashes.items())).encode()).hexdigest()


def _write_v2_model(model_dir: Path, model: V1Model, networks: list[V1Network], imported_from: dict[str, Any],
                    dataset: str) -> None:
    """Write the v2 model folder: plans, dataset description, fingerprint and one checkpoint per fold."""
    import torch

    plans = v2_plans(networks[0], dataset)
    cases = networks[0].plans.get("list_of_npz_files")
    dataset_json = v2_dataset_json(dataset, len(cases) if cases else None, imported_from)
    write_json(model_dir / "plans.json", plans)
    write_json(model_dir / "dataset.json", dataset_json)
    write_json(model_dir / "dataset_fingerprint.json",
               {"foreground_intensity_properties_per_channel": plans["foreground_intensity_properties_per_channel"]})
    network = v2_network(plans, dataset_json)
    for fold, v1 in zip(model.folds, networks):
        load_v1_weights(network, v1, fold.checkpoint)
        with atomic_path(model_dir / f"fold_{fold.fold}" / CHECKPOINT) as tmp:
            torch.save(v2_checkpoint(network, plans, dataset_json, fold.fold, v1.epoch), tmp)


def _import(model: V1Model, source: Path, name: str | None, force: bool) -> Path:
    hashes = _file_hashes(model)
    digest = _hashes_digest(hashes)
    networks = [read_fold(fold) for fold in model.folds]
    for fold, v1 in zip(model.folds[1:], networks[1:]):
        if v1.topology != networks[0].topology:
            raise ModelError(fold.checkpoint, f"fold {fold.fold}'s network differs from fold {model.folds[0].fold}'s")
    if model.plans_file:
        check_plans(networks[0].topology, load_plain_pickle(model.plans_file), model.plans_file)
    dataset = dataset_name(model, networks[0].plans)
    name = check_name(name or task_name(model, networks[0].plans) or dataset, source)
    installed = already_installed(name, digest, source, force=force)
    if installed is not None:
        return installed
    imported_from = provenance(model, source, networks, hashes)
    with installing(name, {"v1_source": str(source.resolve()), "sha256": digest}) as staging:
        model_dir = staging / dataset / f"{V2_TRAINER}__{V2_PLANS}__{CONFIGURATION}"
        _write_v2_model(model_dir, model, networks, imported_from, dataset)
        write_model_card(model_dir, name, [fold.fold for fold in model.folds])
    return model_folder_in(models_dir() / name)


def _named_in_zip(err: ModelError, root: Path, zip_path: Path) -> ModelError:
    """The error of an import from a zip unpacked into ``root``, naming the zip (and the member) instead."""
    path = zip_path / err.path.relative_to(root) if err.path.is_relative_to(root) else err.path
    return ModelError(path, err.problem.replace(str(root), str(zip_path)))


def import_v1_model(source: str | Path, *, name: str | None = None, folds: list[int] | None = None,
                    force: bool = False) -> Path:
    """Import an nnU-Net v1 trained model (folder or zip; see the module doc) and install it as ``name``.

    ``name`` defaults to the v1 task's name (``Task500_Glacier_zonefronts``),
    ``folds`` to every trained fold. The model is checked and converted
    completely before it is put in place (atomically, like
    :func:`~nnunet_glacier.field.models.install_model`); importing the same files
    again is a no-op, another model under a taken name needs ``force``.
    Returns the installed v2 model folder, ready for ``detect -m NAME``.
    """
    source = Path(source)
    if source.is_dir():
        return _import(find_v1_model(source, folds), source, name, force)
    if source.suffix.lower() != ".zip" or not source.is_file():
        raise ModelError(source, "not found, or not a folder or a .zip: expected an nnU-Net v1 trained-model folder "
                                 "or a zip of one")
    with tempfile.TemporaryDirectory(prefix="nnunet_glacier_v1_") as tmp:
        root = Path(tmp)
        try:
            extract_zip(source, root)
            return _import(find_v1_model(root, folds), source, name, force)
        except ModelError as err:
            raise _named_in_zip(err, root, source) from err
