"""Temporal context: which acquisitions feed a scene, no leakage between splits, the exported channels, and a tiny
temporal experiment trained, predicted and evaluated end to end (``reproduce``) on the CPU."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from nnunet_glacier.data import caffe, temporal
from nnunet_glacier.data.experiments import get_experiment, select
from nnunet_glacier.data.synthetic import generate_caffe
from nnunet_glacier.data.temporal import SceneContext, TemporalSettings
from nnunet_glacier.nnunet.export import dataset_json, export_dataset
from nnunet_glacier.pipeline.layout import RunLayout
from nnunet_glacier.pipeline.reproduce import Reproduction, run_reproduction
from nnunet_glacier.utilities.provenance import read_record

TEMPORAL = "stl_zone_prev2"


def caffe_name(glacier: str, date: str, sensor: str = "ERS") -> caffe.SceneName:
    return caffe.SceneName.parse(f"{glacier}_{date}_{sensor}_20_1_001")


def name(glacier: str, date: str, sensor: str = "ERS") -> temporal.Acquisition:
    return temporal.Acquisition.of(caffe_name(glacier, date, sensor))


def stems(*names: temporal.Acquisition | caffe.SceneName) -> tuple[str, ...]:
    return tuple(n.stem for n in names)


# --- the selection ------------------------------------------------------------------------------------------------

def test_previous_acquisitions_nearest_first_with_the_earliest_repeated():
    first, second, third, fourth = (name("Crane", d) for d in ("2001-03-04", "2002-01-10", "2002-06-30", "2005-12-01"))
    other = name("DBE", "2002-05-01")  # another glacier is never context
    contexts = temporal.select_context([third, other, first, fourth, second], TemporalSettings(previous=2))
    assert contexts[fourth.stem] == SceneContext(fourth.stem, stems(third, second), 2, 0)
    assert contexts[second.stem] == SceneContext(second.stem, stems(first, first), 1, 0)  # the earliest repeated
    assert contexts[first.stem] == SceneContext(first.stem, stems(first, first), 0, 0)  # none: the scene itself
    assert contexts[other.stem].channels == stems(other, other)
    assert list(contexts) == sorted(contexts)
    assert contexts[second.stem].record() == {"channels": list(stems(first, first)), "previous_found": 1,
                                              "next_found": 0}


def test_previous_then_next_and_acquisitions_of_one_date():
    early, same_a, same_b, late = (name("JAC", "2010-01-01"), name("JAC", "2010-05-05", "ERS"),
                                   name("JAC", "2010-05-05", "TSX"), name("JAC", "2011-02-02"))
    contexts = temporal.select_context([early, same_a, same_b, late], TemporalSettings(previous=1, next=2))
    # one date is neither earlier nor later; channels: 1 previous, then 2 next (nearest first, the latest repeated)
    assert contexts[same_a.stem] == SceneContext(same_a.stem, stems(early, late, late), 1, 1)
    assert contexts[early.stem] == SceneContext(early.stem, stems(early, same_a, same_b), 0, 2)  # same date: by stem
    assert contexts[late.stem] == SceneContext(late.stem, stems(same_b, late, late), 1, 0)
    assert contexts[same_b.stem].channels == stems(early, late, late)


def test_settings_channels_and_bad_values():
    assert TemporalSettings().n_channels == 1 and not TemporalSettings().enabled
    settings = TemporalSettings(previous=2, next=1)
    assert settings.n_channels == 4 and settings.enabled
    assert temporal.channel_names(settings) == {"0": "SAR", "1": "SAR_previous_1", "2": "SAR_previous_2",
                                                "3": "SAR_next_1"}
    assert [temporal.channel_suffix(k) for k in (0, 1, 12)] == ["_0000", "_0001", "_0012"]
    for bad in (dict(previous=-1), dict(next=1.5), dict(previous=True)):
        with pytest.raises(ValueError, match="whole number >= 0"):
            TemporalSettings(**bad)
    with pytest.raises(ValueError, match="occurs twice"):
        temporal.select_context([name("SI", "2001-01-01")] * 2, settings)
    assert temporal.recorded_settings({"caffe": {"tasks": ["zone"]}}) == TemporalSettings()
    record = temporal.export_record(settings, {})
    assert temporal.recorded_settings({"caffe": {"temporal": record}}) == settings


def test_real_caffe_context_is_the_nearest_earlier_acquisitions(caffe_256):
    names = [temporal.Acquisition.of(s.name) for s in caffe.discover(caffe_256, ("test",))]
    dates = {n.stem: n.date for n in names}
    repeated_at_least_once = False
    for stem, context in temporal.select_context(names, TemporalSettings(previous=2)).items():
        earlier = sorted((d for d in dates.values() if d < dates[stem]), reverse=True)
        found = context.channels[:context.previous_found]
        assert [dates[s] for s in found] == earlier[:2]  # the two latest before the scene, nearest first
        assert set(context.channels[len(found):]) <= {found[-1] if found else stem}
        repeated_at_least_once |= len(found) < 2
    assert repeated_at_least_once  # the first scenes of the series


def test_no_leakage_test_context_from_test_images_and_training_context_from_training_images():
    """The nearest earlier acquisition of a test scene is a training scene of its glacier: it is not used."""
    def sample(scene: caffe.SceneName, split: str) -> caffe.Sample:
        return caffe.Sample(scene, split, Path(f"sar_images/{split}/{scene.stem}.png"), None, None, None, 20.0)

    train = [caffe_name("Crane", d) for d in ("2001-01-01", "2003-01-01", "2005-01-01")]
    test = [caffe_name("Crane", d, "TSX") for d in ("2002-01-01", "2004-01-01")]
    samples = [*(sample(n, "train") for n in train), *(sample(n, "test") for n in test)]
    contexts = temporal.contexts_by_split(samples, TemporalSettings(previous=2, next=1))
    assert contexts[test[1].stem].channels == stems(test[0], test[0], test[1])
    assert contexts[test[0].stem].channels == stems(test[0], test[0], test[1])
    assert contexts[train[2].stem].channels == stems(train[1], train[0], train[2])
    split_of = {s.stem: s.split for s in samples}
    assert all(split_of[c] == split_of[stem] for stem, context in contexts.items() for c in context.channels)


# --- export -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic root (2 scenes per training glacier, 3 per test glacier, 64 px) whose earliest COL scene (the
    context of the other two) is 48 x 80 px; returns the root and that scene's stem."""
    root = tmp_path_factory.mktemp("mixed_sizes")
    generate_caffe(root, n_train=10, n_test=6, size=(64, 64), seed=3, with_bounding_boxes=False)
    stem = min((s for s in caffe.discover(root, ("test",)) if s.name.glacier == "COL"), key=lambda s: s.name.date).stem
    for path, interpolation in ((root / "sar_images" / "test" / f"{stem}.png", cv2.INTER_LINEAR),
                                (root / "zones" / "test" / f"{stem}_zones.png", cv2.INTER_NEAREST),
                                (root / "fronts" / "test" / f"{stem}_front.png", cv2.INTER_NEAREST)):
        cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), (80, 48),
                                          interpolation=interpolation))
    return root, stem


def test_export_writes_each_scenes_context_resized_from_its_own_splits_images(mixed_sizes, tmp_path, monkeypatch):
    root, small = mixed_sizes
    experiment = get_experiment(TEMPORAL)
    read = []
    monkeypatch.setattr(temporal, "read_grey", lambda path: read.append(Path(path)) or caffe.read_grey(path))
    folder = export_dataset(root, experiment, tmp_path / "raw", num_workers=1, progress=False)

    description = json.loads((folder / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "SAR", "1": "SAR_previous_1", "2": "SAR_previous_2"}
    record = description["caffe"]["temporal"]
    samples = {s.stem: s for s in caffe.discover(root)}
    assert (record["previous"], record["next"], sorted(record["scenes"])) == (2, 0, sorted(samples))
    for stem, scene in record["scenes"].items():
        sample = samples[stem]
        images = folder / ("imagesTr" if sample.split == "train" else "imagesTs")
        assert sorted(p.name for p in images.glob(f"{stem}_*.png")) == [f"{stem}_000{k}.png" for k in range(3)]
        own = caffe.read_grey(images / f"{stem}_0000.png")
        np.testing.assert_array_equal(own, caffe.read_grey(sample.image))
        for k, context in enumerate(scene["channels"], start=1):
            assert samples[context].split == sample.split  # no leakage across splits
            expected = temporal.resize_to(caffe.read_grey(samples[context].image), own.shape)
            np.testing.assert_array_equal(caffe.read_grey(images / f"{stem}_000{k}.png"), expected)
    # images only: every file read for a context is a SAR image
    assert read and {p.resolve() for p in read} <= {s.image.resolve() for s in samples.values()}

    cols = sorted((s for s in samples.values() if s.name.glacier == "COL"), key=lambda s: s.name.date)
    assert record["scenes"][cols[2].stem] == {"channels": [cols[1].stem, cols[0].stem], "previous_found": 2,
                                             "next_found": 0}
    assert cols[0].stem == small and caffe.read_grey(cols[0].image).shape == (48, 80)
    assert caffe.read_grey(folder / "imagesTs" / f"{cols[2].stem}_0002.png").shape == (64, 64)  # resized
    assert record["scenes"][small] == {"channels": [small, small], "previous_found": 0, "next_found": 0}
    assert "temporal" not in dataset_json(get_experiment("stl_zone"), list(samples.values()), root)["caffe"]


def test_a_change_of_context_is_seen_by_the_export_record(mixed_sizes, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(mixed_sizes[0], root)
    experiment = get_experiment(TEMPORAL)

    def export(experiment) -> str:
        capsys.readouterr()
        layout = RunLayout.in_work_dir(tmp_path / "work")
        run_reproduction(Reproduction(root, layout, [experiment], processes=1, progress=False), steps=["export"])
        return capsys.readouterr().out

    assert "making" in export(experiment)
    assert "up to date" in export(experiment)
    one_previous = dataclasses.replace(experiment, temporal=TemporalSettings(previous=1))
    assert "making" in export(one_previous)  # another context: re-exported
    dataset = tmp_path / "work" / "nnUNet_raw" / experiment.dataset
    assert len(json.loads((dataset / "dataset.json").read_text())["channel_names"]) == 2
    assert not list(dataset.glob("imagesT*/*_0002.png"))


# --- end to end ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_temporal_experiment_trains_predicts_and_evaluates(synthetic_root, tmp_path, capsys):
    """``reproduce`` of the tiny ``stl_zone_prev2`` (fold 0): its predictions equal nnU-Net's own predictor fed the
    exported channel files, so prediction feeds the test scenes the same context as export, in the same order."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_glacier.nnunet.predict import CONTEXT_RECORD, NNUNET_SPACING, GlacierPredictor
    from nnunet_glacier.nnunet.training import model_folder

    experiment = get_experiment(TEMPORAL, "tiny")
    layout = RunLayout.in_work_dir(tmp_path / "work")
    run = Reproduction(synthetic_root, layout, [experiment], folds=[0], device="cpu", processes=1, progress=False,
                       mirroring=False, max_epochs=1)
    steps = ["export", "plan", "train", "predict", "evaluate"]
    run_reproduction(run, steps)

    raw = layout.workspace.raw / experiment.dataset
    exported = json.loads((raw / "dataset.json").read_text())["caffe"]["temporal"]
    test_stems = sorted(s.stem for s in caffe.discover(synthetic_root, ("test",)))
    predictions = layout.predictions(experiment.name)
    fed = json.loads((predictions / CONTEXT_RECORD).read_text())
    assert fed == {**exported, "scenes": {stem: exported["scenes"][stem] for stem in test_stems}}
    assert read_record(layout.record("predict", experiment.name))["settings"]["temporal"] == fed
    assert (layout.evaluation(experiment.name, "ensemble") / "summary.json").is_file()

    model = model_folder(layout.workspace, experiment)
    ours = GlacierPredictor(model, [0], device="cpu", mirroring=False)
    assert ours.temporal == TemporalSettings(previous=2)
    with pytest.raises(ValueError, match="3 input channels"):
        ours.predict(caffe.read_grey(raw / "imagesTs" / f"{test_stems[0]}_0000.png"))
    reference = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    reference.initialize_from_trained_model_folder(str(model), (0,), "checkpoint_final.pth")
    for stem in test_stems:
        channels = np.stack([caffe.read_grey(raw / "imagesTs" / f"{stem}_000{k}.png") for k in range(3)])
        nnunet = reference.predict_single_npy_array(channels[:, None].astype(np.float32), {"spacing": NNUNET_SPACING},
                                                    None, None, False)[0]
        predicted = caffe.read_zones(predictions / "fold_0" / f"{stem}_zones.png")
        assert np.mean(predicted == nnunet) > 0.9999, stem

    capsys.readouterr()
    run_reproduction(run, steps)  # a re-run: every record, the context's included, is current
    assert f"predict {experiment.name}: 0 scene(s) predicted, {len(test_stems)} up to date" in capsys.readouterr().out


def test_temporal_experiments_are_opt_in_and_in_the_cluster_jobs(tmp_path):
    from nnunet_glacier.cli import build_parser
    from nnunet_glacier.pipeline.slurm import write_slurm_jobs

    names = ["stl_zone_prev2", "mtl_late_prev2", "fused_prev2"]
    assert not any(e.temporal.enabled for e in select("all"))
    args = build_parser().parse_args(["reproduce", "--data", str(tmp_path), "--experiments", *names])
    assert args.experiments == names
    jobs = tmp_path / "jobs"
    write_slurm_jobs(select(["mtl_late", *names]), tmp_path / "caffe", tmp_path / "work", jobs)
    for experiment in names:
        assert f"--experiments {experiment} --steps export plan" in (jobs / f"{experiment}_prepare.sbatch").read_text()
    # a dataset of its own (more input channels): its preparation waits for no other experiment's
    assert "mtl_late_prev2_prepare=$(sbatch --parsable mtl_late_prev2_prepare.sbatch)" in (
        jobs / "submit_all.sh").read_text()
