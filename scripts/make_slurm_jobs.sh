#!/usr/bin/env bash
# Write SLURM job scripts for all six experiments (prepare -> 5-fold train array -> finish -> report)
# and submit them with their dependencies.
#
#   scripts/make_slurm_jobs.sh CAFFE_ROOT WORK_DIR [extra `nnunet-glacier slurm` options, e.g. --partition gpu]
#
# The jobs are generated from configs/ by `nnunet-glacier slurm`; see `nnunet-glacier slurm --help`.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,7p' "$0"
    exit 2
fi
data=$1 work=$2
shift 2
nnunet-glacier slurm --data "$data" --work "$work" --out "$work/slurm_jobs" --experiments all "$@"
echo "review the jobs in $work/slurm_jobs, then run: bash $work/slurm_jobs/submit_all.sh"
