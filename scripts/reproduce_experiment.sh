#!/usr/bin/env bash
# Reproduce one experiment of the paper step by step on one machine (GPU if present, else CPU).
#
#   scripts/reproduce_experiment.sh EXPERIMENT CAFFE_ROOT WORK_DIR [PROFILE]
#
# EXPERIMENT: stl_front | stl_zone | mtl_late | mtl_early | mtl_boundary | fused
# PROFILE:    paper (default; the paper's settings, configs/base.json + <experiment>.json) | tiny | demo
#             | PATH.json (your own profile file, see configs/profiles/)
# Every setting comes from configs/; each step skips what is already done, so
# re-running the script resumes an interrupted reproduction.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,10p' "$0"
    exit 2
fi
experiment=$1 data=$2 work=$3 profile=${4:-paper}
common=(--data "$data" --work "$work" --profile "$profile" --experiments "$experiment")

nnunet-glacier reproduce "${common[@]}" --steps export plan
nnunet-glacier reproduce "${common[@]}" --steps train          # every fold of the config, resumable
nnunet-glacier reproduce "${common[@]}" --steps predict evaluate report
