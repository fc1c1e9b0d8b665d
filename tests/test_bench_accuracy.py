"""benchmarks/bench_accuracy.py's bookkeeping: a seed ensemble is never reported for other seeds than asked."""
from __future__ import annotations

from pathlib import Path

from benchmarks import bench_accuracy


def test_an_ensemble_of_other_seeds_is_removed_not_reported(tmp_path: Path):
    paths = bench_accuracy.Paths(tmp_path)
    run = "stock_zone"
    for folder, name in ((paths.ensemble_predictions(run), "scene_zone.png"),
                         (paths.ensemble_evaluation(run), "per_image.csv")):
        folder.mkdir(parents=True)
        (folder / name).write_text("left by a run over seeds 0 1 2")
    for seed in (0, 1, 2):
        paths.record(seed, run).parent.mkdir(parents=True)
        paths.record(seed, run).write_text("{}")

    # a report over one seed, then over seeds of which one has not finished: no ensemble, and none left behind
    for seeds in ([0], [0, 3]):
        assert not bench_accuracy.ensemble_seeds(paths, budget=None, run=run, seeds=seeds)  # type: ignore[arg-type]
        assert not paths.ensemble_predictions(run).exists() and not paths.ensemble_evaluation(run).exists()
        assert bench_accuracy.collect(paths, [run], seeds)["ensembles"] == {}
