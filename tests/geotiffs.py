"""The tests' GeoTIFF writer: a single-band scene the way a user's warped SAR scene looks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS


def write_geotiff(path: Path, image: np.ndarray, crs: CRS, transform, *, nodata: float | None = None,
                  nodata_mask: np.ndarray | None = None, tags: dict[str, str] | None = None) -> Path:
    """Write ``image`` (any dtype) to ``path`` (its folder made) on ``crs`` and ``transform``; ``nodata``: the
    declared no-data value, ``nodata_mask``: True where a GDAL mask band says no data, ``tags``: metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=image.shape[1], height=image.shape[0], count=1,
                       dtype=image.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(image, 1)
        if nodata_mask is not None:
            dst.write_mask(np.where(nodata_mask, 0, 255).astype(np.uint8))
        if tags:
            dst.update_tags(**tags)
    return path
