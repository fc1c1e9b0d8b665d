"""GeoTIFF and PNG scenes in, georeferenced masks and ordered front lines out (nnunet_glacier.field.geo)."""
from __future__ import annotations

import datetime as dt
import functools
import json
import warnings
from pathlib import Path

import cv2
import geotiffs
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.transform import from_origin

from nnunet_glacier.data.caffe import ConversionWarning
from nnunet_glacier.errors import InputError
from nnunet_glacier.field import geo
from nnunet_glacier.postprocessing import postprocess
from nnunet_glacier.utilities.atomic import write_png

UTM_22N = CRS.from_epsg(32622)  # Jakobshavn Isbrae's UTM zone
#: A polar stereographic grid without an EPSG code (true scale at 71 S, centred on the Antarctic Peninsula).
POLAR_STEREO = CRS.from_proj4("+proj=stere +lat_0=-90 +lat_ts=-71 +lon_0=-60 +x_0=0 +y_0=0 +datum=WGS84 +units=m")
TRANSFORM = from_origin(500_000.0, 7_680_000.0, 30.0, 30.0)  # 30 m pixels, north up
CAFFE_STEM = "JAC_2015-08-12_S1_20_3_123"


#: The tests' GeoTIFF writer with this module's grid (UTM 22N, 30 m pixels) as its default.
write_geotiff = functools.partial(geotiffs.write_geotiff, crs=UTM_22N, transform=TRANSFORM)


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
    path = geo.write_raster(geo.mask_path(tmp_path / "out", scene, "_front"), mask, scene)
    assert path.name == "scene_front.tif"
    with rasterio.open(path) as src:
        assert src.crs == UTM_22N and src.transform == TRANSFORM
        assert src.dtypes == ("uint8",) and src.count == 1
        np.testing.assert_array_equal(src.read(1), mask)


def test_png_scene_gets_png_masks(tmp_path):
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    scene = geo.read_scene(tmp_path / f"{CAFFE_STEM}.png")
    assert not scene.georeferenced and geo.mask_path(tmp_path, scene, "_zones").suffix == ".png"
    geo.write_raster(tmp_path / "m.png", np.zeros(scene.image.shape, np.uint8), scene)
    with pytest.raises(ValueError, match="does not match"):
        geo.write_raster(tmp_path / "bad.png", np.zeros((3, 3), np.uint8), scene)


def test_class_raster_is_a_cloud_optimized_geotiff_with_colours_names_and_nodata(tmp_path):
    shape = (700, 900)  # larger than a 512 px tile: the COG gets an overview
    scene = geo.read_scene(write_geotiff(tmp_path / "big.tif", grey(shape), crs=POLAR_STEREO))
    classes = np.zeros(shape, np.uint8)
    classes[100:, :400], classes[100:, 400:] = 127, 254
    colours = {0: (0, 0, 0, 0), 127: (235, 242, 255, 255), 254: (30, 100, 220, 255)}
    path = geo.write_raster(tmp_path / "zones.tif", classes, scene, nodata=0, colours=colours,
                            class_names={0: "no data", 127: "glacier", 254: "ocean"}, description="zone")
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.profile["compress"] == "deflate" and src.block_shapes == [(512, 512)]
        assert src.overviews(1) == [2]
        assert src.nodata == 0 and src.crs == POLAR_STEREO and src.crs.to_epsg() is None
        assert src.colormap(1)[254] == (30, 100, 220, 255)
        assert src.tags(1)["CLASS_127"] == "glacier" and src.descriptions == ("zone",)
        assert np.ma.getmaskarray(src.read(1, masked=True))[:100].all()
        np.testing.assert_array_equal(src.read(1), classes)
        assert set(np.unique(src.read(1, out_shape=(350, 450)))) <= {0, 127, 254}  # overview: nearest, no blends


def test_float_raster_declares_nan_nodata(tmp_path):
    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey()))
    values = np.linspace(0, 1, scene.image.size, dtype=np.float32).reshape(scene.image.shape)
    values[:3] = np.nan
    with rasterio.open(geo.write_raster(tmp_path / "u.tif", values, scene, nodata=np.nan)) as src:
        band = src.read(1, masked=True)
        assert src.dtypes == ("float32",) and np.isnan(src.nodata)
        assert band.mask[:3].all() and not band.mask[3:].any()
        np.testing.assert_allclose(band[3:], values[3:])


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
    (feature,) = collection["features"]
    assert feature["geometry"]["type"] == "LineString"
    meta, _, (wkb,), _ = pyogrio.raw.read(tmp_path / "front.geojson")
    assert CRS.from_user_input(meta["crs"]) == UTM_22N
    xy = geo.map_to_pixel(np.asarray(shapely.from_wkb(wkb).coords), TRANSFORM)
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


def test_custom_crs_round_trips_through_geojson_read_by_gdal(tmp_path):
    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey(), crs=POLAR_STEREO))
    line = scene.pixel_to_map(np.array([[1.5, 1.5], [20.5, 30.5]]))
    geo.write_front_geojson(tmp_path / "front.geojson", [line], scene, {})
    meta, _, (wkb,), _ = pyogrio.raw.read(tmp_path / "front.geojson")
    assert CRS.from_user_input(meta["crs"]) == POLAR_STEREO  # not EPSG:4326, GDAL's default for GeoJSON
    np.testing.assert_allclose(shapely.from_wkb(wkb).coords, line)


def test_read_vector_gives_the_first_line_and_the_files_crs(tmp_path):
    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey(), crs=POLAR_STEREO))
    line = scene.pixel_to_map(np.array([[1.5, 1.5], [20.5, 30.5], [40.5, 30.5]]))
    geo.write_front_geojson(tmp_path / "front.geojson", [line], scene, {})
    vertices, crs = geo.read_vector(tmp_path / "front.geojson", "LineString")
    np.testing.assert_allclose(vertices, line)
    assert CRS.from_user_input(crs) == POLAR_STEREO
    with pytest.raises(InputError, match=r"front\.geojson: no Polygon feature"):
        geo.read_vector(tmp_path / "front.geojson", "Polygon")
    with pytest.raises(InputError, match=r"scene\.tif: not a vector file GDAL reads"):
        geo.read_vector(tmp_path / "scene.tif", "LineString")
    with pytest.raises(InputError, match=r"gone\.gpkg: polygon file not found"):
        geo.read_vector(tmp_path / "gone.gpkg", "Polygon")


@pytest.mark.parametrize("text, problem", [
    ("x,y\n0,5\n10,5\n", None),
    ("x,z\n0,5\n10,5\n", r"not a LineString: expected a CSV with x,y columns \(missing column\(s\) y\)"),
    ("x,y\n0,5\n10\n", r"not a LineString: expected a CSV with x,y columns \(line 3: fewer fields"),
    ("x,y\n0,5\n10,north\n", r"line 3: x, y must be finite numbers, got '10', 'north'"),
    ("x,y\n0,5\nnan,5\n", r"line 3: x, y must be finite numbers, got 'nan', '5'"),
    ("x,y\n0,5\n", r"a LineString needs at least 2 \(x, y\) vertices, got 1"),
])
def test_read_vector_reads_csv_vertices_through_the_csv_reader(tmp_path, text, problem):
    path = tmp_path / "centre.csv"
    path.write_text(text)
    if problem is None:
        vertices, crs = geo.read_vector(path, "LineString")
        np.testing.assert_array_equal(vertices, [[0.0, 5.0], [10.0, 5.0]])
        assert crs is None
    else:
        with pytest.raises(InputError, match=rf"centre\.csv: {problem}"):
            geo.read_vector(path, "LineString")


def test_reproject_between_crss_and_refuse_map_coordinates_as_degrees():
    points = np.array([[500_000.0, 7_680_000.0], [501_000.0, 7_679_000.0]])
    lon_lat = geo.reproject(points, UTM_22N.to_wkt(), "EPSG:4326", Path("box.gpkg"))
    assert (np.abs(lon_lat[:, 0] + 51) < 0.1).all() and (lon_lat[:, 1] > 69).all()  # 51 W: UTM 22N's centre
    np.testing.assert_allclose(geo.reproject(lon_lat, "EPSG:4326", UTM_22N.to_wkt(), Path("box.gpkg")), points,
                               atol=1e-6)
    np.testing.assert_array_equal(geo.reproject(points, "EPSG:32622", UTM_22N.to_wkt(), Path("box.gpkg")), points)
    with pytest.raises(InputError, match=r"box\.geojson: coordinates out of range for WGS 84"):
        geo.reproject(points, "EPSG:4326", UTM_22N.to_wkt(), Path("box.geojson"))


def test_read_raster_reads_back_what_write_raster_wrote(tmp_path):
    classes = (grey(seed=2) > 128).astype(np.uint8) * 127
    georeferenced = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey()))
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    plain = geo.read_scene(tmp_path / f"{CAFFE_STEM}.png")
    for scene in (georeferenced, plain):
        path = geo.write_raster(geo.mask_path(tmp_path / "out", scene, "_zones"), classes, scene)
        np.testing.assert_array_equal(geo.read_raster(path), classes)
    (tmp_path / "cut_zones.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match=r"cut_zones\.tif: unreadable or truncated GeoTIFF"):
        geo.read_raster(tmp_path / "cut_zones.tif")
    with pytest.raises(InputError, match=r"gone_zones\.tif: file not found"):
        geo.read_raster(tmp_path / "gone_zones.tif")


def test_rfc7946_geojson_is_wgs84_longitude_latitude(tmp_path):
    from pyproj import Transformer

    scene = geo.read_scene(write_geotiff(tmp_path / "scene.tif", grey(), crs=POLAR_STEREO,
                                         transform=from_origin(-2_400_000.0, 1_100_000.0, 30.0, 30.0)))
    line = scene.pixel_to_map(np.array([[1.5, 1.5], [20.5, 30.5]]))
    geo.write_front_geojson(tmp_path / "front.geojson", [line], scene, {}, rfc7946=True)
    collection = json.loads((tmp_path / "front.geojson").read_text())
    assert "crs" not in collection
    meta, _, (wkb,), _ = pyogrio.raw.read(tmp_path / "front.geojson")
    assert CRS.from_user_input(meta["crs"]) == CRS.from_epsg(4326)
    lon, lat = np.asarray(shapely.from_wkb(wkb).coords).T
    assert (-75 < lat).all() and (lat < -60).all()  # the Antarctic Peninsula
    back = np.column_stack(Transformer.from_crs("EPSG:4326", POLAR_STEREO.to_wkt(), always_xy=True).transform(lon, lat))
    np.testing.assert_allclose(back, line, atol=0.02)  # 7 decimals: about a centimetre


def test_geopackage_layers_keep_crs_schema_and_nulls(tmp_path):
    columns = {"stem": "str", "date": "date", "length_m": "float", "needs_check": "bool"}
    fronts = geo.VectorLayer("fronts", POLAR_STEREO.to_wkt(), columns,
                             [{"stem": "a", "date": "2020-01-02", "length_m": 1500.0, "needs_check": False},
                              {"stem": "b", "date": None, "length_m": None, "needs_check": True}],
                             [shapely.MultiLineString([[(0, 0), (30, 40)]]), None])
    empty = geo.VectorLayer("fronts_pixel", None, columns, [], [])
    geo.write_geopackage(tmp_path / "fronts.gpkg", [fronts, empty])
    assert [tuple(layer) for layer in pyogrio.list_layers(tmp_path / "fronts.gpkg")] == [
        ("fronts", "MultiLineString"), ("fronts_pixel", "MultiLineString")]
    meta, _, geometry, (stem, date, length, check) = pyogrio.raw.read(tmp_path / "fronts.gpkg", layer="fronts")
    assert CRS.from_user_input(meta["crs"]) == POLAR_STEREO
    assert meta["ogr_types"] == ["OFTString", "OFTDate", "OFTReal", "OFTInteger"]
    assert list(stem) == ["a", "b"] and str(date[0]) == "2020-01-02" and np.isnat(date[1])
    assert length[0] == 1500.0 and np.isnan(length[1]) and list(check) == [False, True]
    assert shapely.from_wkb(geometry[0]).length == 50.0 and geometry[1] is None
    info = pyogrio.read_info(tmp_path / "fronts.gpkg", layer="fronts_pixel")
    assert info["features"] == 0 and list(info["fields"]) == list(columns) and info["crs"] is None


def test_nodata_value_nan_and_internal_mask_are_nodata(tmp_path):
    backscatter_db = np.random.default_rng(0).uniform(-25, 0, (40, 50)).astype(np.float32)
    backscatter_db[10:20, 10:20] = np.nan  # a NaN block in a dB scene
    backscatter_db[0, :] = -np.inf
    backscatter_db[-3:] = -9999.0
    with pytest.warns(ConversionWarning):
        scene = geo.read_scene(write_geotiff(tmp_path / "db.tif", backscatter_db, nodata=-9999.0))
    expected = np.zeros((40, 50), bool)
    expected[10:20, 10:20] = expected[0] = expected[-3:] = True
    np.testing.assert_array_equal(scene.nodata_mask, expected)
    assert (scene.image[expected] == 0).all() and (scene.image[~expected] > 0).all()
    masked = tmp_path / "masked.tif"
    with rasterio.open(masked, "w", driver="GTiff", width=50, height=40, count=1, dtype="uint8", crs=UTM_22N,
                       transform=TRANSFORM) as dst:
        dst.write(grey(), 1)
        valid = np.full((40, 50), 255, np.uint8)
        valid[:, :7] = 0
        dst.write_mask(valid)
    assert geo.read_scene(masked).nodata_mask[:, :7].all() and not geo.read_scene(masked).nodata_mask[:, 7:].any()


def test_zero_fill_touching_the_border_is_nodata_isolated_zeros_are_not(tmp_path):
    image = grey((100, 120))
    image[:, :30] = 0  # swath border fill
    image[50:53, 60:63] = 0  # dark pixels inside the scene
    image[99, 119] = 0  # a single dark pixel on the border: below ZERO_BORDER_MIN_FRACTION
    path = write_geotiff(tmp_path / "s1.tif", image)
    nodata = geo.read_scene(path).nodata_mask
    assert nodata[:, :30].all() and nodata.sum() == 100 * 30
    assert geo.read_scene(path, zero_border=False).nodata is None
    write_png(tmp_path / "all_zero.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(InputError, match=r"all_zero\.png: raster holds no pixel with data"):
        geo.read_scene(tmp_path / "all_zero.png", pixel_size_m=10.0)


def test_list_scenes_leaves_out_hidden_files_such_as_temporaries(tmp_path):
    write_png(tmp_path / "scene.png", grey())
    (tmp_path / ".scene_front.4242.x1y2.tmp.png").write_bytes(b"half a PNG")
    assert geo.list_scenes(tmp_path) == [tmp_path / "scene.png"]


def test_grid_pixel_size_of_a_geographic_grid_is_its_geodesic_size(tmp_path):
    # at 69.2 N a degree of latitude is about 111.6 km and one of longitude 111.7 km x cos(69.2) = 39.7 km
    path = write_geotiff(tmp_path / f"{CAFFE_STEM}.tif", grey(), crs=CRS.from_epsg(4326),
                         transform=from_origin(-50.0, 69.2, 0.002, 0.0007))
    scene = geo.read_scene(path)
    assert scene.grid_pixel_size_m == pytest.approx(np.sqrt(0.002 * 39_700 * 0.0007 * 111_600), rel=0.01)
    assert scene.pixel_size_m == 20.0 and scene.pixel_size_source == "name"  # degrees give no pixel size
    assert "its name says 20 m per pixel but its GeoTIFF grid has 78.7 m pixels" in geo.resolution_mismatch(scene)


def test_resolution_mismatch_needs_a_name_and_a_grid_and_tolerates_10_percent(tmp_path):
    for metres, mismatch in ((21.9, False), (22.5, True)):
        path = write_geotiff(tmp_path / f"{CAFFE_STEM}.tif", grey(), transform=from_origin(0, 0, metres, metres))
        assert (geo.resolution_mismatch(geo.read_scene(path)) is not None) == mismatch
    other = write_geotiff(tmp_path / "plain.tif", grey(), transform=from_origin(0, 0, 80, 80))
    assert geo.resolution_mismatch(geo.read_scene(other)) is None  # no CaFFe name: nothing to disagree with
    write_png(tmp_path / f"{CAFFE_STEM}.png", grey())
    assert geo.resolution_mismatch(geo.read_scene(tmp_path / f"{CAFFE_STEM}.png")) is None  # no grid


def test_a_scene_lacks_contrast_when_its_data_hold_one_grey_value(tmp_path):
    flat = write_geotiff(tmp_path / "flat.tif", np.full((40, 50), -10.0, np.float32))  # -10 dB everywhere
    with pytest.warns(ConversionWarning, match="stretched"):
        scene = geo.read_scene(flat)
    assert "no contrast" in geo.lacks_contrast(scene)
    edge = np.full((40, 50), 120, np.uint8)
    edge[:, :5] = 0  # a zero-filled swath edge (no-data) beside one grey value: still no contrast
    assert geo.lacks_contrast(geo.read_scene(write_geotiff(tmp_path / "edge.tif", edge))) is not None
    assert geo.lacks_contrast(geo.read_scene(write_geotiff(tmp_path / "grey.tif", grey()))) is None


def test_a_geographic_crs_over_metre_coordinates_has_no_grid_pixel_size(tmp_path):
    path = write_geotiff(tmp_path / f"{CAFFE_STEM}.tif", grey(), crs=CRS.from_epsg(4326))  # UTM numbers as degrees
    scene = geo.read_scene(path)
    assert scene.grid_pixel_size_m is None and geo.resolution_mismatch(scene) is None


def test_a_scene_list_file_gives_its_scenes_in_order(tmp_path):
    from nnunet_glacier.field.geo import list_scenes

    (tmp_path / "list.txt").write_text("b.tif\n# a comment\n\na.png\n/archive/c.tif\n")
    assert list_scenes(tmp_path / "list.txt") == [tmp_path / "b.tif", tmp_path / "a.png", Path("/archive/c.tif")]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="empty scene list"):
        list_scenes(tmp_path / "empty.txt")


def test_macos_metadata_files_in_a_scene_folder_are_skipped_with_a_warning(tmp_path):
    from nnunet_glacier.field.geo import list_scenes

    for name in ("a.png", "._a.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"\._a\.png: macOS metadata"):
        assert list_scenes(tmp_path) == [tmp_path / "a.png"]


def test_grid_pixel_size_of_a_crs_without_ellipsoid_is_unknown():
    """A local engineering grid has no ellipsoid to measure degrees on: the pixel size is unknown, not a crash."""
    local = CRS.from_wkt('LOCAL_CS["local grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    assert geo.grid_pixel_size(Path("local.tif"), local, from_origin(0, 0, 10, 10), (100, 100)) is None
