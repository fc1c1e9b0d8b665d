"""The six experiments of Herrmann et al. (2023), declared once.

The settings the paper states for all six experiments are declared once in
``configs/base.json``; each experiment is a short JSON file in ``configs/``
holding what sets it apart (tasks, dataset, trainer, branching, patch size)
and is read on top of the base into a typed :class:`Experiment` record. The
label *tasks* they combine are declared in :mod:`nnunet_glacier.data.tasks`.
Size profiles (``configs/profiles/*.json``: a ``description`` and overrides)
override plan and training settings for every experiment, e.g. ``tiny`` for
CPU tests and the demo; a profile is given by its name or as the path of a
JSON file of the same form (so runs can be sized without editing the
package). A key that no setting reads is an error.

Any experiment can take other acquisitions of its glacier as extra input
channels: ``"temporal": {"previous": K, "next": N}``
(:mod:`nnunet_glacier.data.temporal`; the base has none). The experiments
with it are extensions, opt-in by name (``stl_zone_prev2``, ``mtl_late_prev2``,
``fused_prev2``), each on a dataset of its own (more input channels).

Everything else — export, planning, trainers, prediction, evaluation,
reproduction scripts — looks experiments up here instead of restating them.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_glacier.data import labels
from nnunet_glacier.data.tasks import TASKS, LabelSettings, Task
from nnunet_glacier.data.temporal import TemporalSettings
from nnunet_glacier.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PROFILE_DIR = CONFIG_DIR / "profiles"
BASE_FILE = "base.json"


@dataclass(frozen=True)
class PlanSettings:
    """How the nnU-Net plan of an experiment is edited (see :mod:`nnunet_glacier.nnunet.plans`).

    ``patch_size`` (pixels, rows x cols) and ``batch_size`` of ``None`` keep
    nnU-Net's planner's choice; experiments of one ``plan_group`` share patch
    and batch size.
    """

    plan_group: str
    patch_size: tuple[int, int] | None
    batch_size: int | None
    base_features: int
    max_features: int
    max_stages: int | None


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    optimizer: str
    initial_lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    lr_schedule: str
    deep_supervision: bool
    save_every: int


@dataclass(frozen=True)
class EvaluationSettings:
    """Post-processing settings of the evaluation (see :class:`~nnunet_glacier.postprocessing.postprocess.PostprocessSettings`)."""

    front_min_length_m: float
    fused_glacier_dilation_px: int


@dataclass(frozen=True)
class FrontDistanceSettings:
    """The front-distance regression head (:mod:`nnunet_glacier.nnunet.front_distance`).

    ``max_px``: distances are capped at this many pixels (of each
    deep-supervision scale); ``weight``: its loss's weight beside the tasks'.
    """

    max_px: int
    weight: float


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    tasks: tuple[str, ...]
    dataset_id: int
    dataset_name: str
    trainer: str
    branching: str | None
    labels: LabelSettings
    loss_weights: tuple[float, ...]
    plan: PlanSettings
    training: TrainingSettings
    folds: tuple[int, ...]
    evaluation: EvaluationSettings
    profile: str = "paper"
    front_distance: FrontDistanceSettings | None = None
    role: str = "paper"
    temporal: TemporalSettings = TemporalSettings()

    @property
    def dataset(self) -> str:
        """nnU-Net's dataset folder name, e.g. ``Dataset503_CaFFeZonesFront``."""
        return f"Dataset{self.dataset_id:03d}_{self.dataset_name}"

    @property
    def task_objects(self) -> tuple[Task, ...]:
        return tuple(TASKS[t] for t in self.tasks)

    @property
    def task_classes(self) -> tuple[int, ...]:
        return tuple(TASKS[t].n_classes for t in self.tasks)

    @property
    def is_multitask(self) -> bool:
        return len(self.tasks) > 1

    @property
    def configuration(self) -> str:
        """Name of the configuration our plans edit writes, e.g. ``2d_paper``."""
        return f"2d_{profile_name(self.profile)}"

    def build_label(self, zones: np.ndarray, front: np.ndarray) -> np.ndarray:
        """nnU-Net label image from zone classes (0..3) and the raw front mask (0/1)."""
        maps = [task.build(zones, front, self.labels) for task in self.task_objects]
        return labels.encode_tasks(maps, self.task_classes)

    def label_names(self) -> dict[str, int]:
        """The ``labels`` entry of nnU-Net's dataset.json: one name per encoded class.

        Names join the first task's class with the non-background classes of
        the others (``ocean``, ``na+front``, ``glacier+front+boundary``; first
        task varying fastest, as in the encoding); class 0 is named
        ``background`` as nnU-Net requires.
        """
        first, *others = self.task_objects
        names = list(first.class_names)
        for task in others:
            names = [f"{prefix}+{c}" if index else prefix
                     for index, c in enumerate(task.class_names) for prefix in names]
        names[0] = "background"
        return {name: index for index, name in enumerate(names)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from err


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _experiment_from_dict(raw: dict[str, Any], profile: str, source: Path) -> Experiment:
    unread = sorted(set(raw) - {f.name for f in fields(Experiment)} - {"profile"})
    if unread:
        raise ConfigError(f"{source}: unknown setting(s) {unread}")
    try:
        plan = dict(raw["plan"])
        if plan.get("patch_size") is not None:
            plan["patch_size"] = tuple(plan["patch_size"])
        experiment = Experiment(
            name=raw["name"], title=raw["title"], tasks=tuple(raw["tasks"]),
            dataset_id=int(raw["dataset_id"]), dataset_name=raw["dataset_name"], trainer=raw["trainer"],
            branching=raw["branching"], labels=LabelSettings(**raw["labels"]),
            loss_weights=tuple(float(w) for w in raw["loss_weights"]), plan=PlanSettings(**plan),
            training=TrainingSettings(**raw["training"]), folds=tuple(raw["folds"]),
            evaluation=EvaluationSettings(**raw["evaluation"]),
            profile=profile,
            front_distance=FrontDistanceSettings(**raw["front_distance"]) if raw.get("front_distance") else None,
            role=raw["role"],
            temporal=TemporalSettings(**raw["temporal"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{source}: missing, unexpected or malformed setting ({err})") from err
    unknown = [t for t in experiment.tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"{source}: unknown task(s) {unknown}; known: {sorted(TASKS)}")
    if len(experiment.loss_weights) != len(experiment.tasks):
        raise ConfigError(f"{source}: need one loss weight per task")
    if (experiment.training.optimizer, experiment.training.lr_schedule) != ("SGD", "poly"):
        raise ConfigError(f"{source}: only the SGD optimizer with the poly schedule is supported")
    if experiment.branching not in (None, "late", "early"):
        raise ConfigError(f"{source}: branching must be null, 'late' or 'early'")
    if experiment.role not in ROLES:
        raise ConfigError(f"{source}: role must be one of {', '.join(ROLES)}")
    if experiment.front_distance is not None and (experiment.branching != "late" or "front" not in experiment.tasks):
        raise ConfigError(f"{source}: a front-distance head needs late branching and a front task")
    if (experiment.branching is None) == experiment.is_multitask:
        raise ConfigError(f"{source}: multi-task experiments need a branching, single-task ones none")
    return experiment


def base_evaluation() -> EvaluationSettings:
    """The evaluation settings every experiment shares (``configs/base.json``), e.g. for ``detect``'s defaults."""
    path = CONFIG_DIR / BASE_FILE
    try:
        return EvaluationSettings(**_read_json(path)["evaluation"])
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{path}: missing, unexpected or malformed evaluation settings ({err})") from err


def profiles() -> list[str]:
    """Names of the size profiles in ``configs/profiles``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def is_profile_file(profile: str) -> bool:
    """Whether ``profile`` is the path of a profile file (it ends in ``.json``) rather than a profile's name."""
    return profile.endswith(".json")


def profile_file(profile: str) -> Path:
    """A profile's JSON file: ``configs/profiles/<name>.json`` for a name, else the path given."""
    return Path(profile) if is_profile_file(profile) else PROFILE_DIR / f"{profile}.json"


def profile_name(profile: str) -> str:
    """A profile's short name (a profile file's stem); nnU-Net's configuration is ``2d_<name>``."""
    return profile_file(profile).stem


def resolve_profile(profile: str) -> str:
    """A profile as given by a user: a known name as it is, a profile file as its absolute path.

    Raises :class:`ConfigError` for an unknown name, a missing file, or a file
    whose name is not a word (``[A-Za-z0-9_]``) or is that of a built-in
    profile (its configuration ``2d_<name>`` would mix with the built-in one's).
    """
    if not is_profile_file(profile):
        if profile not in profiles():
            raise ConfigError(f"unknown profile {profile!r}; choose {', '.join(profiles())} "
                              "or give the path of a .json profile file")
        return profile
    path = Path(profile).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    if not re.fullmatch(r"\w+", path.stem) or path.stem in profiles():
        raise ConfigError(f"{path}: a profile file needs a name of letters, digits and _ other than the built-in "
                          f"profiles' ({', '.join(profiles())}): it names the nnU-Net configuration 2d_<name>")
    return str(path)


def profile_description(profile: str = "paper") -> str:
    """What a size profile is for: its ``description`` (empty if it has none)."""
    return str(_read_json(profile_file(profile)).get("description", ""))


@cache
def load_experiments(profile: str = "paper") -> dict[str, Experiment]:
    """All experiments, in the paper's order, with ``profile`` (a name or a profile file) applied."""
    override = _read_json(profile_file(profile))
    override = {k: v for k, v in override.items() if k != "description"}
    base = _read_json(CONFIG_DIR / BASE_FILE)
    experiments = {}
    for path in sorted(p for p in CONFIG_DIR.glob("*.json") if p.name != BASE_FILE):
        raw = _merge(_merge(base, _read_json(path)), override)
        experiment = _experiment_from_dict(raw, profile, path)
        if experiment.name != path.stem:
            raise ConfigError(f"{path}: name {experiment.name!r} must equal the file name")
        experiments[experiment.name] = experiment
    _check_shared_plans(experiments)
    ordered = {name: experiments[name] for name in EXPERIMENT_ORDER if name in experiments}
    for role in ROLES:
        ordered |= {name: e for name, e in experiments.items() if e.role == role}
    return ordered


#: The paper's six experiments in its order; ``select("all")`` gives them.
EXPERIMENT_ORDER = ("stl_front", "stl_zone", "mtl_late", "mtl_early", "mtl_boundary", "fused")
#: What an experiment is: one of the paper's six, an extension beyond the paper (opt-in by name), or a
#: baseline — nnU-Net's stock trainer on one of our datasets (opt-in: ``reproduce --baseline``).
ROLES = ("paper", "extension", "baseline")


def _check_shared_plans(experiments: dict[str, Experiment]) -> None:
    groups: dict[str, tuple[str, PlanSettings]] = {}
    for experiment in experiments.values():
        first = groups.setdefault(experiment.plan.plan_group, (experiment.name, experiment.plan))
        if first[1] != experiment.plan:
            raise ConfigError(f"experiments {first[0]} and {experiment.name} share plan group "
                              f"{experiment.plan.plan_group!r} but their plan settings differ")
    datasets: dict[int, Experiment] = {}
    for experiment in experiments.values():
        other = datasets.setdefault(experiment.dataset_id, experiment)
        if (other.tasks, other.labels, other.dataset_name) != (experiment.tasks, experiment.labels,
                                                              experiment.dataset_name):
            raise ConfigError(f"experiments {other.name} and {experiment.name} use dataset "
                              f"{experiment.dataset_id} but build different labels")
        if other.temporal != experiment.temporal:
            raise ConfigError(f"experiments {other.name} and {experiment.name} use dataset "
                              f"{experiment.dataset_id} but different temporal context (input channels)")
        if other.training != experiment.training:
            raise ConfigError(f"experiments {other.name} and {experiment.name} share dataset "
                              f"{experiment.dataset_id} (and so its plans) but their training settings differ")


def get_experiment(name: str, profile: str = "paper") -> Experiment:
    """One experiment by name; raises ``ConfigError`` listing the known names."""
    experiments = load_experiments(profile)
    if name not in experiments:
        raise ConfigError(f"unknown experiment {name!r}; choose from {', '.join(experiments)}")
    return experiments[name]


def select(names: list[str] | tuple[str, ...] | str, profile: str = "paper") -> list[Experiment]:
    """Experiments by name, in the order given; ``"all"`` stands for the paper's six in its order."""
    if isinstance(names, str):
        names = [names]
    expanded = [n for name in names for n in (EXPERIMENT_ORDER if name == "all" else (name,))]
    return [get_experiment(n, profile) for n in dict.fromkeys(expanded)]


def baselines(profile: str = "paper") -> list[Experiment]:
    """The baseline experiments (stock nnU-Net), in config order."""
    return [e for e in load_experiments(profile).values() if e.role == "baseline"]


def experiment_names() -> list[str]:
    """Every configured experiment's name (the config files' stems), paper's six first, without reading them."""
    stems = sorted(p.stem for p in CONFIG_DIR.glob("*.json") if p.name != BASE_FILE)
    return [*EXPERIMENT_ORDER, *(s for s in stems if s not in EXPERIMENT_ORDER)]
