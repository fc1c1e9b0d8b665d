"""Synthetic CaFFe scenes: layout, names, label consistency, determinism and the time trend."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest

from nnunet_glacier.cli import main
from nnunet_glacier.data import caffe, labels, synthetic
from nnunet_glacier.errors import InputError


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` by its relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_names(synthetic_root):
    samples = caffe.discover(synthetic_root)
    assert [s.split for s in samples] == ["train"] * 8 + ["test"] * 4
    for sample in samples:
        name = sample.name
        assert name.glacier in synthetic.GLACIERS_BY_SPLIT[sample.split]
        assert name.sensor in caffe.SENSORS
        assert name.resolution_m == synthetic.SENSOR_RESOLUTION_M[name.sensor]
        first, last = synthetic.SENSOR_YEARS[name.sensor]
        assert first <= name.date.year <= last
        assert 1 <= name.quality_factor <= 5
        assert name.orbit.isdigit()
        assert sample.image == synthetic_root / "sar_images" / sample.split / f"{sample.stem}.png"
        assert sample.zones == synthetic_root / "zones" / sample.split / f"{sample.stem}_zones.png"
        assert sample.front == synthetic_root / "fronts" / sample.split / f"{sample.stem}_front.png"
        assert sample.bbox == synthetic_root / "bounding_boxes" / f"{sample.stem}_bbox.txt"
    for split in caffe.SPLITS:
        names = [s.name for s in samples if s.split == split]
        assert {n.season for n in names} == {"winter", "summer"}
        assert len({n.date.year for n in names}) > 1


def test_sensor_tables_cover_the_caffe_sensors():
    assert set(synthetic.SENSOR_RESOLUTION_M) == set(caffe.SENSORS) == set(synthetic.SENSOR_YEARS)


def test_labels_are_consistent(synthetic_root):
    for sample in caffe.discover(synthetic_root):
        loaded = caffe.load_sample(sample)
        assert loaded.image.shape == (128, 128)
        assert set(np.unique(loaded.zones)) == {labels.NA, labels.ROCK, labels.GLACIER, labels.OCEAN}
        assert loaded.front.any()
        np.testing.assert_array_equal(loaded.front, labels.front_from_zones(loaded.zones))
        box = caffe.read_bbox(sample.bbox).mask(loaded.front.shape)
        assert box[loaded.front > 0].all()
        assert box.mean() < 1


def test_classes_have_distinct_mean_intensities(synthetic_root):
    images, zones = zip(*((s.image, s.zones) for s in map(caffe.load_sample, caffe.discover(synthetic_root))))
    image, zone = np.stack(images).astype(float), np.stack(zones)
    means = [image[zone == c].mean() for c in (labels.NA, labels.OCEAN, labels.ROCK, labels.GLACIER)]
    assert means == sorted(means) and min(np.diff(means)) > 30


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path):
    kwargs = dict(n_train=3, n_test=2, size=(48, 64))
    for folder, seed in (("a", 1), ("b", 1), ("c", 2)):
        synthetic.generate_caffe(tmp_path / folder, seed=seed, **kwargs)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert file_bytes(tmp_path / "a") != file_bytes(tmp_path / "c")
    assert sorted(file_bytes(tmp_path / "a")) != sorted(file_bytes(tmp_path / "c"))


def test_returns_image_paths_and_honours_size_and_bounding_box_switch(tmp_path):
    images = synthetic.generate_caffe(tmp_path, n_train=2, n_test=1, size=(40, 72), with_bounding_boxes=False)
    assert [p.parent.name for p in images] == ["train", "train", "test"]
    assert all(caffe.read_grey(p).shape == (40, 72) for p in images)
    assert not (tmp_path / "bounding_boxes").exists()


def test_rerun_with_same_arguments_is_allowed_but_mixing_scenes_is_not(tmp_path):
    synthetic.generate_caffe(tmp_path, n_train=2, n_test=1, size=(32, 32))
    before = file_bytes(tmp_path)
    synthetic.generate_caffe(tmp_path, n_train=2, n_test=1, size=(32, 32))
    assert file_bytes(tmp_path) == before
    with pytest.raises(InputError, match="already holds other scenes") as error:
        synthetic.generate_caffe(tmp_path, n_train=2, n_test=1, size=(32, 32), seed=5)
    assert error.value.path.parent.parent == tmp_path / "sar_images"


@pytest.mark.parametrize("kwargs, problem", [
    (dict(n_train=-1), "negative"),
    (dict(size=(31, 64)), "at least 32"),
])
def test_bad_arguments_raise(tmp_path, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        synthetic.generate_caffe(tmp_path, **kwargs)


def test_front_retreats_over_the_years_and_advances_in_winter():
    for glacier, end_of_winter, end_of_summer in (("COL", 3, 9), ("Crane", 8, 2)):
        assert synthetic.glacier_extent(glacier, dt.date(1998, 6, 1)) > synthetic.glacier_extent(glacier, dt.date(2018, 6, 1))
        winter = synthetic.glacier_extent(glacier, dt.date(2010, end_of_winter, 20))
        summer = synthetic.glacier_extent(glacier, dt.date(2010, end_of_summer, 20))
        assert winter - summer > 1.5 * synthetic.EXTENT_SEASONAL


def test_glacier_area_follows_the_extent_over_a_time_series(tmp_path):
    synthetic.generate_caffe(tmp_path, n_train=30, n_test=0, size=(64, 64))
    samples = [s for s in caffe.discover(tmp_path) if s.name.glacier == "Crane"]
    extents = [synthetic.glacier_extent("Crane", s.name.date) for s in samples]
    areas = [(caffe.read_zones(s.zones) == labels.GLACIER).sum() for s in samples]
    assert len(samples) == 6
    assert np.corrcoef(extents, areas)[0, 1] > 0.9


def test_twenty_scenes_of_128_px_are_fast(tmp_path):
    start = time.perf_counter()
    synthetic.generate_caffe(tmp_path, n_train=16, n_test=4)
    assert time.perf_counter() - start < 3


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--n-train", "2", "--n-test", "1", "--size", "32", "48",
                 "--seed", "3", "--no-bounding-boxes"]) == 0
    assert len(caffe.discover(out)) == 3 and not (out / "bounding_boxes").exists()
    assert "3 synthetic scenes" in capsys.readouterr().out
    assert main(["synth", "--out", str(out), "--seed", "4"]) == 1
    assert str(out) in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "small"), "--size", "8", "8"]) == 2
    assert "at least 32" in capsys.readouterr().err
