"""The published numbers our results are compared with: test-set MDEs on the real CaFFe data, in metres."""
from __future__ import annotations

#: Herrmann et al. (2023), test set, mean ± std over 5 folds where given.
HERRMANN_2023_MDE_M = (
    ("fused labels, zone route", "541 ± 84"),
    ("multi-task learning variants", "509 – 568"),
    ("single-task front", "1103"),
    ("single-task zones", "1184"),
)
#: The CaFFe baselines (Gourmelon et al. 2022), drawn as reference lines in MDE box plots.
CAFFE_BASELINES_M = {"CaFFe baseline, zones": 753.0, "CaFFe baseline, fronts": 887.0}
