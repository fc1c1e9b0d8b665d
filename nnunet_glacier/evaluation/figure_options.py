"""What figures can be asked for: file formats and the groupings of per-image results.

Kept apart from :mod:`nnunet_glacier.evaluation.plots` (which imports matplotlib) so that
the command line offers these choices without importing a plotting library.
"""
from __future__ import annotations

#: File formats every matplotlib figure is written in (suffixes).
FORMATS = ("png", "pdf")
#: ``--by`` grouping of per-image results -> its per_image.csv column.
GROUP_COLUMNS = {"glacier": "glacier", "season": "season", "sensor": "sensor", "resolution": "resolution_m"}
