"""A whole reproduction: the work-directory layout, reproduce, the report, SLURM jobs."""
