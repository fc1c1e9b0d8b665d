"""The CaFFe data layer: names, discovery, pixel sizes, bounding boxes and every kind of bad input."""
from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from nnunet_glacier.data import caffe
from nnunet_glacier.data.caffe import ConversionWarning, SceneName
from nnunet_glacier.data.synthetic import generate_caffe
from nnunet_glacier.errors import InputError

STEM = "Jorum_2010-11-05_TSX_7_1_110"


# --- names -----------------------------------------------------------------------------------------------------

def test_name_fields():
    name = SceneName.parse("Mapple_2008-03-30_PALSAR_17.5_3_O135")
    assert (name.glacier, name.date, name.sensor) == ("Mapple", dt.date(2008, 3, 30), "PALSAR")
    assert (name.resolution_m, name.quality_factor, name.orbit) == (17.5, 3, "O135")
    assert name.stem == "Mapple_2008-03-30_PALSAR_17.5_3_O135"


@pytest.mark.parametrize("stem, hemisphere, season", [
    ("COL_2011-01-10_TSX_7_1_1", "north", "winter"),
    ("COL_2011-09-10_TSX_7_1_1", "north", "winter"),
    ("COL_2011-06-10_TSX_7_1_1", "north", "summer"),
    ("JAC_2011-04-10_TSX_7_1_1", "north", "summer"),
    ("Crane_2011-06-10_TSX_7_1_1", "south", "winter"),
    ("SI_2011-04-01_TSX_7_1_1", "south", "winter"),
    ("DBE_2011-01-10_TSX_7_1_1", "south", "summer"),
    ("Mapple_2011-09-10_TSX_7_1_1", "south", "summer"),
])
def test_hemisphere_and_season(stem, hemisphere, season):
    name = SceneName.parse(stem)
    assert (name.hemisphere, name.season) == (hemisphere, season)


@pytest.mark.parametrize("stem, problem", [
    ("Crane_2011-06-10_TSX_7_1", "does not follow"),
    ("Crane-2011-06-10-TSX-7-1-1", "does not follow"),
    ("Crane_11-06-10_TSX_7_1_1", "does not follow"),
    ("Crane_2011-06-10_TSX_7m_1_1", "does not follow"),
    ("Crane_2011-02-30_TSX_7_1_1", "invalid date '2011-02-30'"),
    ("Crane_2011-13-01_TSX_7_1_1", "invalid date"),
    ("Crane_2011-06-10_TSX_0_1_1", "resolution"),
])
def test_bad_names(stem, problem):
    with pytest.raises(InputError, match=problem) as error:
        SceneName.parse(stem, Path("/data") / f"{stem}.png")
    assert str(error.value).startswith(f"/data/{stem}.png: ")


def test_error_survives_pickling_for_worker_processes():
    error = pickle.loads(pickle.dumps(InputError("/a/b.png", "broken")))
    assert (error.path, error.problem, str(error)) == (Path("/a/b.png"), "broken", "/a/b.png: broken")


# --- discovery, pairing, pixel size ----------------------------------------------------------------------------

def test_discovery_pairs_images_labels_and_boxes(synthetic_root):
    samples = caffe.discover(synthetic_root)
    assert len(samples) == 12
    assert samples == sorted(samples, key=lambda s: (caffe.SPLITS.index(s.split), s.stem))
    for sample in samples:
        assert sample.zones.name == f"{sample.stem}_zones.png" and sample.zones.is_file()
        assert sample.front.name == f"{sample.stem}_front.png" and sample.front.is_file()
        assert sample.bbox.name == f"{sample.stem}_bbox.txt"
        assert sample.pixel_size_m == sample.name.resolution_m
    assert [s.split for s in caffe.discover(synthetic_root, ("test",))] == ["test"] * 4


def test_pixel_size_override(synthetic_root):
    samples = caffe.discover(synthetic_root, pixel_size=50)
    assert {s.pixel_size_m for s in samples} == {50.0}
    chosen = samples[0].stem
    per_stem = caffe.discover(synthetic_root, pixel_size={chosen: 33.0})
    assert {s.stem: s.pixel_size_m for s in per_stem} == {s.stem: 33.0 if s.stem == chosen else s.name.resolution_m
                                                         for s in samples}


@pytest.fixture
def root(tmp_path) -> Path:
    """A writable CaFFe root with one training scene of 32 x 32 pixels (no bounding box)."""
    generate_caffe(tmp_path, n_train=1, n_test=0, size=(32, 32), with_bounding_boxes=False)
    return tmp_path


def only_sample(root: Path) -> caffe.Sample:
    (sample,) = caffe.discover(root)
    return sample


def test_unlabelled_scenes_when_labels_are_not_required(root):
    sample = only_sample(root)
    sample.zones.unlink()
    sample.front.unlink()
    (unlabelled,) = caffe.discover(root, require_labels=False)
    assert unlabelled.zones is None and unlabelled.front is None and unlabelled.bbox is None
    loaded = caffe.load_sample(unlabelled)
    assert loaded.zones is None and loaded.front is None and loaded.image.shape == (32, 32)


def test_macos_apple_double_files_are_skipped_with_a_warning(root):
    sample = only_sample(root)
    metadata = [sample.image.with_name(f"._{sample.image.name}"), sample.zones.with_name(f"._{sample.zones.name}"),
                sample.front.with_name(f"._{sample.front.name}")]
    for path in metadata:
        path.write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata")
    with pytest.warns(UserWarning) as caught:
        assert caffe.discover(root) == [sample]
    assert sorted(str(w.message) for w in caught) == sorted(f"{path}: macOS metadata file (AppleDouble ._ file), "
                                                            "skipped" for path in metadata)


# --- bounding boxes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("corners", [
    ["10,20", "10,60", "90,60", "90,20"],
    ["90.4,60", "10,20.2", "90,20", "9.6,60"],
])
def test_bounding_box_in_any_corner_order(tmp_path, corners):
    path = tmp_path / "box.txt"
    path.write_text("\n".join(["x,y", *corners]) + "\n")
    assert caffe.read_bbox(path) == caffe.BoundingBox(x_min=10, x_max=90, y_min=20, y_max=60)


def test_bounding_box_mask_clips_like_the_caffe_reference():
    mask = caffe.BoundingBox(x_min=-5, x_max=200, y_min=2, y_max=4).mask((10, 8))
    assert mask.sum() == 2 * 7  # rows 2..3, columns 0..6: a maximum beyond the edge becomes size - 1
    assert mask[2:4, :7].all()


@pytest.mark.parametrize("content, problem", [
    ("header\n1,2\n3,4\n", "found 3 lines"),
    ("header\n1,2\n3,4\n5,x\n7,8\n", "must be 'x,y' numbers"),
    ("header\n1,2,3\n3,4\n5,6\n7,8\n", "'x,y' pairs"),
    (b"\xff\xfe\x00binary", "not a text file"),
    (None, "cannot read bounding box"),
])
def test_bad_bounding_box_names_the_file(tmp_path, content, problem):
    path = tmp_path / "box.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=problem) as error:
        caffe.read_bbox(path)
    assert error.value.path == path


# --- reading and converting images -----------------------------------------------------------------------------

def rewrite_png(root: Path, kind: str, change: Callable[[np.ndarray], np.ndarray]) -> tuple[Path, np.ndarray]:
    """Overwrite the scene's ``kind`` file ("image", "zones", "front") with ``change`` of its pixels.

    Returns the file and the pixels written.
    """
    path = getattr(only_sample(root), kind)
    pixels = change(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    cv2.imwrite(str(path), pixels)
    return path, pixels


@pytest.mark.parametrize("change, message, expected", [
    (lambda grey: np.dstack([grey] * 3), "equal channels", lambda written: written[..., 0]),
    (lambda grey: np.dstack([grey, grey // 2, 255 - grey]), "luminance",
     lambda written: cv2.cvtColor(written, cv2.COLOR_BGR2GRAY)),
    (lambda grey: grey.astype(np.uint16), "cast to 8 bit", lambda written: written.astype(np.uint8)),
    (lambda grey: grey.astype(np.uint16) * 200, "scaled",
     lambda written: np.round(written / written.max() * 255).astype(np.uint8)),
], ids=["rgb-equal-channels", "colour", "16-bit-up-to-255", "16-bit-above-255"])
def test_image_conversions_warn_naming_the_file(root, change, message, expected):
    path, written = rewrite_png(root, "image", change)
    with pytest.warns(ConversionWarning, match=message) as record:
        image = caffe.load_sample(only_sample(root)).image
    assert str(record[0].message).startswith(f"{path}: ")
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected(written))


# --- every kind of bad input names its file --------------------------------------------------------------------

def rename_scene(root: Path, new_stem: str) -> Path:
    """Rename the scene's three files to ``new_stem``; returns the new image path."""
    sample = only_sample(root)
    for path, suffix in ((sample.image, ""), (sample.zones, "_zones"), (sample.front, "_front")):
        path.rename(path.with_name(f"{new_stem}{suffix}.png"))
    return sample.image.with_name(f"{new_stem}.png")


def copy_label_to(root: Path, target: Path) -> Path:
    """Copy the scene's zone label to ``target`` (a label without its image); returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(only_sample(root).zones.read_bytes())
    return target


def delete_front(root: Path) -> Path:
    sample = only_sample(root)
    sample.front.unlink()
    return sample.image


def truncate_image(root: Path) -> Path:
    image = only_sample(root).image
    image.write_bytes(image.read_bytes()[:100])
    return image


def replace_zones_by_text(root: Path) -> Path:
    zones = only_sample(root).zones
    zones.write_text("zones, honestly")
    return zones


@pytest.mark.parametrize("break_root, problem", [
    (lambda root: rename_scene(root, "Crane_2011-06-10_notasensor"), "does not follow"),
    (delete_front, "missing label .*_front.png"),
    (lambda root: copy_label_to(root, root / "zones" / "train" / f"{STEM}_zones.png"),
     "label without a matching image"),
    (lambda root: copy_label_to(root, root / "zones" / "test" / f"{STEM}_zones.png"),
     "label without a matching image"),
    (lambda root: rewrite_png(root, "zones", lambda z: np.full((32, 40), 64, np.uint8))[0],
     "size 40x32 differs from image"),
    (lambda root: rewrite_png(root, "zones", lambda z: np.full_like(z, 100))[0],
     r"values \[100\] outside \[0, 64, 127, 254\]"),
    (lambda root: rewrite_png(root, "front", lambda f: np.full_like(f, 128))[0], r"values \[128\] outside \[0, 255\]"),
    (lambda root: rewrite_png(root, "zones", lambda z: np.dstack([z, z, 255 - z]))[0], "label is a colour image"),
    (lambda root: rewrite_png(root, "front", lambda f: np.full(f.shape, 1000, np.uint16))[0],
     "label with values above 255"),
    (truncate_image, "unreadable or truncated"),
    (replace_zones_by_text, "unreadable or truncated"),
], ids=["unparseable-name", "missing-label", "label-without-image", "label-in-split-without-images",
        "size-mismatch", "zone-values", "front-values", "colour-label", "16-bit-label", "truncated-png",
        "not-a-png"])
def test_bad_input_names_the_file(root, break_root: Callable[[Path], Path], problem):
    bad_file = break_root(root)
    with pytest.raises(InputError, match=problem) as error:
        for sample in caffe.discover(root):
            caffe.load_sample(sample)
    assert error.value.path == bad_file
    assert str(error.value).startswith(f"{bad_file}: ")


def test_inputs_are_not_modified_by_reading(root):
    before = {p: p.read_bytes() for p in root.rglob("*.png")}
    caffe.load_sample(only_sample(root))
    assert {p: p.read_bytes() for p in root.rglob("*.png")} == before


def test_empty_root_names_the_folder(tmp_path):
    with pytest.raises(InputError, match="not a CaFFe root") as error:
        caffe.discover(tmp_path)
    assert error.value.path == tmp_path
    (tmp_path / "sar_images" / "train").mkdir(parents=True)
    with pytest.raises(InputError, match="no images found") as error:
        caffe.discover(tmp_path)
    assert error.value.path == tmp_path


def test_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match="file not found") as error:
        caffe.read_grey(tmp_path / "gone.png")
    assert error.value.path == tmp_path / "gone.png"


def test_real_sample_loads(caffe_256):
    samples = caffe.discover(caffe_256, pixel_size=100.0)
    assert {s.split for s in samples} == {"train", "test"}
    assert {s.name.glacier for s in samples} == {"Crane", "Jorum"}
    loaded = caffe.load_sample(samples[0])
    assert loaded.image.shape == loaded.zones.shape == loaded.front.shape == (256, 256)
    assert loaded.front.any()
