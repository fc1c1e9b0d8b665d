"""GeoTIFF and PNG scenes in, georeferenced masks and ordered front lines out (nnunet_glacier.geo)."""
from __future__ import annotations

import datetime as dt
import json
import warnings

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from nnunet_glacier import geo, postprocess
from nnunet_glacier.atomic import write_png
from nnunet_glacier.caffe import ConversionWarning
from nnunet_glacier.errors import InputError

UTM_22N = CRS.from_epsg(32622)  # Jakobshavn Isbrae's UTM zone
TRANSFORM = from_origin(500_000.0, 7_680_000.0, 30.0, 30.0)  # 30 m pixels, north up
CAFFE_STEM = "JAC_2015-08-12_S1_20_3_123"


def write_geotiff(path, data, crs=UTM_22N, transform=TRANSFORM, nodata=None):
    """A single-band GeoTIFF of ``data`` (any dtype), the way a user's warped Sentinel-1 scene looks."""
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data, 1)
    return path


def grey(shape=(40, 50), seed=0):
    return np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)


def curved_front(shape=(40, 50)):
    """A one-pixel, 8-connected curve across the image (a skeletonized sine bump)."""
    from skimage.morphology import skeletonize

    cols = np.arange(3, shape[1] - 3)
    rows = shape[0] / 2 + 8 * np.sin(cols / 7)
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.polylines(mask, [np.round(np.column_stack([cols, rows])).astype(np.int32)], False, 1)
    return skeletonize(mask > 0)


def test_geotiff_scene_reads_crs_transform_and_pixel_size(tmp_path):
    image = grey()
    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", image))
    assert scene.georeferenced and scene.crs == UTM_22N and scene.transform == TRANSFORM
    assert scene.pixel_size_m == 30.0 and scene.pixel_size_source == "transform"
    np.testing.assert_array_equal(scene.image, image)


def test_mask_geotiff_round_trips_crs_and_transform(tmp_path):
    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey()))
    mask = (grey(seed=1) > 128).astype(np.uint8) * 255
    path = geo.write_mask(geo.mask_path(tmp_path / "out", scene, "_front"), mask, scene)
    assert path.name == "scene_front.tif"
    with rasterio.open(path) as src:
        assert src.crs == UTM_22N and src.transform == TRANSFORM
        assert src.dtypes == ("uint8",) and src.count == 1
        np.testing.assert_array_equal(src.read(1), mask)


def test_png_scene_gets_png_masks(tmp_path):
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    scene = geo.read_scene(tmp_path / f"{CAFFE_STEM}.png")
    assert not scene.georeferenced and geo.mask_path(tmp_path, scene, "_zones").suffix == ".png"
    geo.write_mask(tmp_path / "m.png", np.zeros(scene.image.shape, np.uint8), scene)
    with pytest.raises(ValueError, match="does not match"):
        geo.write_mask(tmp_path / "bad.png", np.zeros((3, 3), np.uint8), scene)


def test_default_pixel_size_only_fills_in_transform_then_name_then_default(tmp_path):
    named_tif = write_geotiff(tmp_path / f"{CAFFE_STEM}.tif", grey())
    assert geo.read_scene(named_tif, default_pixel_size_m=7.0).pixel_size_m == 30.0  # the transform wins
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    scene = geo.read_scene(tmp_path / f"{CAFFE_STEM}.png", default_pixel_size_m=7.0)
    assert (scene.pixel_size_m, scene.pixel_size_source) == (20.0, "name")
    write_png(tmp_path / "plain.png", grey())
    scene = geo.read_scene(tmp_path / "plain.png", default_pixel_size_m=7.0)
    assert (scene.pixel_size_m, scene.pixel_size_source) == (7.0, "default")
    with pytest.raises(InputError, match=r"plain\.png: pixel size unknown.*--pixel-size"):
        geo.read_scene(tmp_path / "plain.png")


def test_given_pixel_size_wins_over_name_and_transform(tmp_path, recwarn):
    """Issue 12: a CaFFe-named 256-px copy with --pixel-size uses the given size, not the name's resolution."""
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    scene = geo.read_scene(tmp_path / f"{CAFFE_STEM}.png", pixel_size_m=100.0, default_pixel_size_m=7.0)
    assert (scene.pixel_size_m, scene.pixel_size_source) == (100.0, "option")
    tif = write_geotiff(tmp_path / "utm.tif", grey())  # 30 m pixels
    assert geo.read_scene(tif, pixel_size_m=30.2).pixel_size_m == 30.2  # within 1 %: no warning
    assert not [w for w in recwarn if "transform says" in str(w.message)]
    with pytest.warns(UserWarning, match=r"utm\.tif: the given pixel size 40 m is used, but the GeoTIFF's transform "
                                         r"says 30 m"):
        scene = geo.read_scene(tif, pixel_size_m=40.0)
    assert (scene.pixel_size_m, scene.pixel_size_source) == (40.0, "option")
    with pytest.raises(InputError, match="must be positive"):
        geo.read_scene(tif, pixel_size_m=-5.0)


def test_geographic_crs_needs_a_pixel_size(tmp_path):
    path = write_geotiff(tmp_path / "wgs84.tif", grey(), crs=CRS.from_epsg(4326),
                         transform=from_origin(-50.0, 69.2, 0.0003, 0.0003))
    with pytest.raises(InputError, match="geographic"):
        geo.read_scene(path)
    assert geo.read_scene(path, default_pixel_size_m=25.0).pixel_size_source == "default"
    assert geo.read_scene(path, pixel_size_m=25.0).pixel_size_source == "option"


def test_float_raster_is_stretched_to_8_bit_with_nodata_as_zero(tmp_path):
    backscatter_db = np.linspace(-25.0, 5.0, 40 * 50, dtype=np.float32).reshape(40, 50)
    backscatter_db[:5] = -9999.0
    path = write_geotiff(tmp_path / "sigma0_db.tif", backscatter_db, nodata=-9999.0)
    with pytest.warns(ConversionWarning, match=r"sigma0_db\.tif: float32 raster stretched"):
        scene = geo.read_scene(path)
    assert scene.image.dtype == np.uint8
    assert (scene.image[:5] == 0).all()
    assert scene.image[5:].min() == 1 and scene.image[5:].max() == 255
    assert (np.diff(scene.image[5:].ravel().astype(int)) >= 0).all()  # monotone in the input


def test_uint16_raster_is_stretched(tmp_path):
    data = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 20
    with pytest.warns(ConversionWarning, match="uint16"):
        scene = geo.read_scene(write_geotiff(tmp_path / "amplitude.tif", data))
    assert scene.image.min() == 1 and scene.image.max() == 255


@pytest.mark.parametrize("content", [b"", b"II*\x00garbage", b"not a tiff at all" * 10])
def test_corrupt_geotiff_error_names_the_file(tmp_path, content):
    path = tmp_path / "broken_scene.tif"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"broken_scene\.tif: unreadable or truncated GeoTIFF"):
        geo.read_scene(path)


def test_truncated_geotiff_error_names_the_file(tmp_path):
    full = write_geotiff(tmp_path / "full.tif", grey((300, 300))).read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(full[:len(full) // 2])
    with pytest.raises(InputError, match=r"cut\.tif"):
        geo.read_scene(path)


def test_list_scenes_takes_pngs_and_geotiffs_only(tmp_path):
    for name in ("b.tif", "a.png", "c.TIFF", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in geo.list_scenes(tmp_path)] == ["a.png", "b.tif", "c.TIFF"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no scenes"):
        geo.list_scenes(tmp_path / "empty")


def test_ordered_paths_are_chains_of_8_neighbours_covering_the_curve():
    front = curved_front()
    (path,) = postprocess.ordered_paths(front)
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    assert (steps == 1).all()  # consecutive pixels are 8-neighbours, no pixel repeated in place
    assert len({tuple(p) for p in path}) == len(path)
    assert front[path[:, 0], path[:, 1]].all()
    assert len(path) >= 0.9 * front.sum()  # staircase corners may be skipped, nothing else


def test_front_geojson_lines_lie_on_the_front_pixels(tmp_path):
    front = curved_front()
    scene = geo.read_scene(write_geotiff(tmp_path / "scene_2016-07-01.tif", grey()))
    lines = geo.front_lines(postprocess.ordered_paths(front), scene)
    geo.write_front_geojson(tmp_path / "front.geojson", lines, scene, {"stem": scene.stem})
    collection = json.loads((tmp_path / "front.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32622"
    assert CRS.from_wkt(collection["crs_wkt"]) == UTM_22N
    (feature,) = collection["features"]
    assert feature["geometry"]["type"] == "LineString"
    xy = geo.map_to_pixel(geo.read_front_geojson(tmp_path / "front.geojson")[0], TRANSFORM)
    cols, rows = np.floor(xy).astype(int).T
    assert front[rows, cols].all()
    assert feature["properties"]["length_m"] == pytest.approx(
        30.0 * np.hypot(*np.diff(xy, axis=0).T).sum())


def test_pixel_scene_lines_are_pixel_centres_and_say_so(tmp_path):
    write_png(tmp_path / "plain.png", grey())
    scene = geo.read_scene(tmp_path / "plain.png", default_pixel_size_m=10.0)
    straight = [np.array([[5, c] for c in range(10, 20)])]
    (line,) = geo.front_lines(straight, scene)
    np.testing.assert_array_equal(line, np.column_stack([np.arange(10, 20) + 0.5, np.full(10, 5.5)]))
    assert geo.line_length_m(line, scene) == pytest.approx(90.0)
    geo.write_front_geojson(tmp_path / "front.geojson", [line], scene, {})
    collection = json.loads((tmp_path / "front.geojson").read_text())
    assert "crs" not in collection and collection["coordinates"].startswith("pixel")
    assert geo.front_lines([np.array([[1, 1]])], scene) == []  # a single pixel is no line


def test_dates_from_caffe_names_and_plain_stems():
    assert geo.date_from_stem("S1A_IW_20190514T101010_front") == dt.date(2019, 5, 14)
    assert geo.date_from_stem("helheim_2020-02-29") == dt.date(2020, 2, 29)
    assert geo.date_from_stem("scene_20191332") is None  # not a date
    assert geo.date_from_stem("orbit_123456789") is None


def test_multiband_geotiff_uses_band_one_with_a_warning(tmp_path):
    data = np.stack([grey(), grey(seed=2)])
    path = tmp_path / "two_bands.tif"
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=2, dtype="uint8", crs=UTM_22N,
                       transform=TRANSFORM) as dst:
        dst.write(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = geo.read_scene(path)
    assert any("2 bands, using band 1" in str(w.message) for w in caught)
    np.testing.assert_array_equal(scene.image, data[0])
