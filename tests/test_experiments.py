"""The experiment registry: the six experiments, profiles, label names and broken configs."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnunet_glacier.data import experiments, labels, tasks, temporal
from nnunet_glacier.data.experiments import EXPERIMENT_ORDER, get_experiment, load_experiments, select
from nnunet_glacier.errors import ConfigError


def test_six_experiments_in_the_papers_order_then_extensions_and_baselines():
    assert EXPERIMENT_ORDER == ("stl_front", "stl_zone", "mtl_late", "mtl_early", "mtl_boundary", "fused")
    assert list(load_experiments()) == [*EXPERIMENT_ORDER, *TEMPORAL_EXTENSIONS, "stock_fused", "stock_zone"]
    assert experiments.experiment_names() == list(load_experiments())
    assert [e.name for e in select("all")] == list(EXPERIMENT_ORDER)
    assert [e.name for e in select(["fused", "stl_zone"])] == ["fused", "stl_zone"]
    assert [e.name for e in select(["all", "mtl_distance", "fused"])] == [*EXPERIMENT_ORDER, "mtl_distance"]
    assert [e.name for e in experiments.baselines()] == ["stock_fused", "stock_zone"]


#: The extensions beyond the paper, in config order: the front-distance head, temporal context on the best three,
#: and single-task zones with other amounts of context (1, 4, previous + next).
TEMPORAL_EXTENSIONS = ("fused_prev2", "mtl_distance", "mtl_late_prev2", "stl_zone_prev1", "stl_zone_prev1_next1",
                       "stl_zone_prev2", "stl_zone_prev4")


def test_temporal_experiments_add_acquisitions_to_the_best_ones_and_nothing_else():
    for name, base, context in (("stl_zone_prev2", "stl_zone", (2, 0)), ("mtl_late_prev2", "mtl_late", (2, 0)),
                                ("fused_prev2", "fused", (2, 0)), ("stl_zone_prev1", "stl_zone", (1, 0)),
                                ("stl_zone_prev4", "stl_zone", (4, 0)), ("stl_zone_prev1_next1", "stl_zone", (1, 1))):
        for profile in ("paper", "tiny"):
            with_context, without = get_experiment(name, profile), get_experiment(base, profile)
            assert with_context.role == "extension" and without.temporal == temporal.TemporalSettings()
            assert with_context.temporal == temporal.TemporalSettings(*context)
            assert dataclasses.replace(with_context, name=base, title=without.title, role=without.role,
                                       dataset_id=without.dataset_id, dataset_name=without.dataset_name,
                                       temporal=without.temporal) == without
            assert with_context.dataset != without.dataset  # more input channels: a dataset of its own


def test_baselines_are_stock_nnunet_on_our_datasets():
    for name, shadows in (("stock_fused", "fused"), ("stock_zone", "stl_zone")):
        stock, ours = get_experiment(name), get_experiment(shadows)
        assert stock.role == "baseline" and stock.trainer == "nnUNetTrainer"
        assert (stock.dataset, stock.tasks, stock.labels, stock.plan, stock.training) == \
            (ours.dataset, ours.tasks, ours.labels, ours.plan, ours.training)
    # no setting of ours for foreground oversampling: nnU-Net's own applies to every trainer
    assert not any("oversample" in field for field in dataclasses.asdict(get_experiment("fused").training))


def test_experiments_hold_the_papers_settings():
    found = {name: (e.tasks, e.branching) for name, e in load_experiments().items() if e.role == "paper"}
    assert found == {
        "stl_front": (("front",), None), "stl_zone": (("zone",), None),
        "mtl_late": (("zone", "front"), "late"), "mtl_early": (("zone", "front"), "early"),
        "mtl_boundary": (("zone", "front", "boundary"), "late"), "fused": (("fused",), None),
    }
    for experiment in load_experiments().values():
        assert experiment.labels.front_dilation_px == 5
        assert experiment.training.initial_lr == 0.01 and experiment.training.momentum == 0.99
        assert experiment.training.weight_decay == 3e-5 and experiment.training.epochs == 500
        assert experiment.folds == (0, 1, 2, 3, 4)
        assert experiment.plan.patch_size == ((1024, 896) if experiment.is_multitask else (1280, 1024))
    # early, late and boundary branching train on one shared plan
    assert len({get_experiment(n).plan for n in ("mtl_late", "mtl_early", "mtl_boundary")}) == 1


def test_tiny_profile_overrides_plan_and_training_only():
    tiny = json.loads((experiments.PROFILE_DIR / "tiny.json").read_text())
    for name in EXPERIMENT_ORDER:
        paper, small = get_experiment(name), get_experiment(name, "tiny")
        assert small.profile == "tiny" and small.configuration == "2d_tiny"
        for section in ("plan", "training"):
            for key, value in tiny[section].items():
                found = getattr(getattr(small, section), key)
                assert found == (tuple(value) if isinstance(value, list) else value), (name, section, key)
        assert (small.tasks, small.labels, small.dataset) == (paper.tasks, paper.labels, paper.dataset)
        assert small.plan.plan_group == paper.plan.plan_group
        assert small.training.initial_lr == paper.training.initial_lr
    assert "tiny" in experiments.profiles() and "paper" in experiments.profiles()


@pytest.mark.parametrize("name", EXPERIMENT_ORDER)
def test_label_names_follow_the_encoding(name):
    experiment = get_experiment(name)
    first, *others = experiment.task_objects
    names = experiment.label_names()
    assert sorted(names.values()) == list(range(int(np.prod(experiment.task_classes))))
    for encoded_class, label_name in ((v, k) for k, v in names.items()):
        classes = [int(c) for c in labels.decode_tasks(np.array(encoded_class), experiment.task_classes)]
        parts = [first.class_names[classes[0]]]
        parts += [task.class_names[c] for task, c in zip(others, classes[1:]) if c]
        assert label_name == ("background" if encoded_class == 0 else "+".join(parts))


def test_build_label_encodes_each_task():
    zones = np.array([[0, 1, 2, 3, 3, 3, 3]], np.uint8)
    front = np.array([[0, 0, 0, 1, 0, 0, 0]], np.uint8)
    settings = get_experiment("fused").labels
    dilated = labels.front_label(front, settings.front_dilation_px)
    assert get_experiment("stl_zone").build_label(zones, front).tolist() == zones.tolist()
    assert get_experiment("stl_front").build_label(zones, front).tolist() == dilated.tolist()
    assert get_experiment("fused").build_label(zones, front).tolist() == [[0, 4, 4, 4, 4, 4, 3]]
    assert get_experiment("mtl_late").build_label(zones, front).tolist() == (zones + 4 * dilated).tolist()
    boundary = labels.glacier_boundary(zones, settings.boundary_dilation_px)
    expected = zones + 4 * dilated + 8 * boundary
    assert get_experiment("mtl_boundary").build_label(zones, front).tolist() == expected.tolist()


def test_task_png_values_round_trip_and_reject_unknown_values():
    zone = tasks.TASKS["zone"]
    classes = np.array([[0, 1, 2, 3]], np.uint8)
    assert zone.to_png(classes).tolist() == [[0, 64, 127, 254]]
    assert zone.from_png(zone.to_png(classes)).tolist() == classes.tolist()
    with pytest.raises(ValueError, match=r"\[100\]"):
        zone.from_png(np.array([[0, 100]], np.uint8))


def test_zone_classes_and_their_labels_are_defined_once_in_tasks():
    """The zone and fused tasks, the metrics' column names and detect's GIS class names use tasks' zone classes."""
    from nnunet_glacier.evaluation.metrics import summarise_zones, zone_scores
    from nnunet_glacier.field.detect import ZONE_NAMES

    assert tasks.TASKS["zone"].class_names == tasks.ZONE_CLASSES == tasks.TASKS["fused"].class_names[:4]
    assert len(tasks.ZONE_LABELS) == len(tasks.ZONE_CLASSES) == len(tasks.ZONE_VALUES)
    scores = summarise_zones([zone_scores(np.array([[0, 1, 2, 3]]), np.array([[0, 1, 2, 3]]))])
    assert [key.removeprefix("iou_") for key in scores if key.startswith("iou_")] == ["macro", *tasks.ZONE_CLASSES]
    assert ZONE_NAMES == dict(zip(tasks.ZONE_VALUES, tasks.ZONE_LABELS))


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="fused"):
        get_experiment("nonsense")


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """A writable copy of configs/ that the registry reads instead of the real one."""
    folder = tmp_path / "configs"
    shutil.copytree(experiments.CONFIG_DIR, folder)
    monkeypatch.setattr(experiments, "CONFIG_DIR", folder)
    monkeypatch.setattr(experiments, "PROFILE_DIR", folder / "profiles")
    load_experiments.cache_clear()
    yield folder
    load_experiments.cache_clear()


def edit_config(folder: Path, experiment: str, changes: dict) -> Path:
    """Replace top-level settings of ``<folder>/<experiment>.json``; returns its path."""
    path = folder / f"{experiment}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


def test_shared_settings_are_declared_once_in_the_base_file():
    base = json.loads((experiments.CONFIG_DIR / experiments.BASE_FILE).read_text())
    for name in EXPERIMENT_ORDER:
        own = json.loads((experiments.CONFIG_DIR / f"{name}.json").read_text())
        for key, value in own.items():
            repeated = set(value) & set(base.get(key, {})) if isinstance(value, dict) else key in base
            assert not repeated, (name, key)
        assert len(own) + len(own["plan"]) <= 12, f"{name}.json should stay short"


def test_profiles_describe_themselves():
    assert all(experiments.profile_description(p) for p in experiments.profiles())


def test_config_copy_loads(config_dir):
    assert list(load_experiments())[:6] == list(EXPERIMENT_ORDER)


@pytest.mark.parametrize("changes, problem", [
    (dict(tasks=["zone", "glacier_velocity"]), "unknown task"),
    (dict(loss_weights=[1.0, 1.0]), "one loss weight per task"),
    (dict(branching="middle"), "branching must be"),
    (dict(tasks=["zone", "front"], loss_weights=[1.0, 1.0]), "need a branching"),
    (dict(name="fused_v2"), "must equal the file name"),
    (dict(labels="five pixels"), "missing, unexpected or malformed setting"),
    (dict(notes="a key nothing reads"), r"unknown setting\(s\) \['notes'\]"),
    (dict(role="bonus"), "role must be one of"),
    (dict(front_distance={"max_px": 16, "weight": 1.0}), "front-distance head needs late branching"),
    (dict(temporal={"previous": -1}), "missing, unexpected or malformed setting"),
    (dict(temporal={"earlier": 2}), "missing, unexpected or malformed setting"),
])
def test_broken_experiment_config_names_its_file(config_dir, changes, problem):
    path = edit_config(config_dir, "fused", changes)
    with pytest.raises(ConfigError, match=problem) as error:
        load_experiments()
    assert str(path) in str(error.value)


def test_missing_setting_names_its_file(config_dir):
    path = config_dir / "stl_zone.json"
    raw = json.loads(path.read_text())
    del raw["dataset_id"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="dataset_id") as error:
        load_experiments()
    assert str(path) in str(error.value)


def test_invalid_json_names_its_file(config_dir):
    path = config_dir / "stl_front.json"
    path.write_text("{ not json")
    with pytest.raises(ConfigError, match="not valid JSON") as error:
        load_experiments()
    assert str(path) in str(error.value)


def test_missing_profile_names_its_file(config_dir):
    with pytest.raises(ConfigError, match="file not found") as error:
        load_experiments("huge")
    assert str(config_dir / "profiles" / "huge.json") in str(error.value)


def test_shared_plan_group_with_different_plans_is_rejected(config_dir):
    plan = json.loads((config_dir / "mtl_early.json").read_text())["plan"]
    edit_config(config_dir, "mtl_early", {"plan": {**plan, "patch_size": [512, 512]}})
    with pytest.raises(ConfigError, match="share plan group 'mtl'"):
        load_experiments()


def test_shared_dataset_with_different_labels_is_rejected(config_dir):
    edit_config(config_dir, "mtl_early", {"labels": {"front_dilation_px": 3, "boundary_dilation_px": 5}})
    with pytest.raises(ConfigError, match="dataset 503 but build different labels"):
        load_experiments()


def test_shared_dataset_with_different_temporal_context_is_rejected(config_dir):
    edit_config(config_dir, "mtl_early", {"temporal": {"previous": 1}})
    with pytest.raises(ConfigError, match="dataset 503 but different temporal context"):
        load_experiments()


def test_a_profile_file_sizes_runs_like_a_named_profile(tmp_path):
    tiny = json.loads((experiments.PROFILE_DIR / "tiny.json").read_text())
    path = tmp_path / "my_gpu.json"
    path.write_text(json.dumps({**tiny, "description": "my GPU", "training": {**tiny["training"], "epochs": 7}}))
    profile = experiments.resolve_profile(str(path))
    assert profile == str(path.resolve())
    experiment = get_experiment("mtl_late", profile)
    assert experiment.configuration == "2d_my_gpu" and experiment.training.epochs == 7
    assert experiment.plan.patch_size == tuple(tiny["plan"]["patch_size"])
    assert experiments.profile_name(profile) == "my_gpu" and experiments.profile_description(profile) == "my GPU"
    assert experiments.resolve_profile("tiny") == "tiny"


@pytest.mark.parametrize("name, problem", [
    ("missing.json", "file not found"),
    ("paper.json", "other than the built-in profiles"),  # its configuration 2d_paper would mix with paper's
    ("my-gpu.json", "letters, digits and _"),
    ("huge", "unknown profile 'huge'"),
])
def test_bad_profiles_are_config_errors(tmp_path, name, problem):
    (tmp_path / "paper.json").write_text("{}")
    (tmp_path / "my-gpu.json").write_text("{}")
    given = str(tmp_path / name) if name.endswith(".json") else name
    with pytest.raises(ConfigError, match=problem):
        experiments.resolve_profile(given)


def test_cli_takes_a_profile_file_and_rejects_a_bad_one(tmp_path, capsys):
    from nnunet_glacier.cli import build_parser

    path = tmp_path / "small.json"
    path.write_text((experiments.PROFILE_DIR / "tiny.json").read_text())
    args = build_parser().parse_args(["plan", "--experiment", "fused", "--profile", str(path)])
    assert args.profile == str(path.resolve())
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["plan", "--experiment", "fused", "--profile", str(tmp_path / "none.json")])
    assert exit_.value.code == 2 and "none.json: file not found" in capsys.readouterr().err


def test_detect_defaults_to_the_experiments_evaluation_settings():
    from nnunet_glacier.postprocessing.postprocess import PostprocessSettings

    base = experiments.base_evaluation()
    assert (base.front_min_length_m, base.fused_glacier_dilation_px) == (PostprocessSettings().min_length_m,
                                                                        PostprocessSettings().fused_dilation_px)
