"""How the tests run torch and nnU-Net: one CPU thread, nnU-Net's worker pools started from a fork server (its
file listing in threads), a dataset fingerprint from fewer intensity samples, and no progress plots.

conftest.py applies them (:func:`apply`) to the test process;
``python tests/nnunet_runtime.py ARGS`` runs ``nnunet-glacier ARGS`` with them, for
tests whose subprocesses must train as the test process does.

**One thread.** The tests' networks are tiny, and two OpenMP threads wait on each
other whenever anything else runs on a two-core machine (a forward of the tiny
profile's U-Net on a busy machine: 3 ms with one thread, 210 ms with two).
``OMP_NUM_THREADS=1`` gives torch one thread here and in child processes, and
``train_fold`` without ``threads`` (which would set every core) trains on one.
Training with another number of threads rounds differently: runs whose weights
are compared must use the same.

**Pools from a fork server.** nnU-Net v2 asks for
``multiprocessing.get_context("spawn")`` for every pool it starts: planning
(dataset check, fingerprint, preprocessing) and each training's final validation
(export, metrics). A spawned worker imports torch and nnU-Net afresh, about 3 s of
CPU each, and a tiny training's validation starts two of them: that was most of
the cost of the tests that train. Here those calls (from nnU-Net's own modules
only: our package's pools are left as they are) get the ``forkserver`` context
instead, whose server imports torch and nnU-Net's worker modules once; each
worker is then a fork of it. The workers still receive their arguments pickled
and inherit nothing from the test process, as spawned ones do.

One difference: a forked worker sees the environment of the server (started at
the first pool), not the test process's current one. nnU-Net's pool workers
(nnunetv2 2.8: ``export_prediction_from_logits``, ``compute_metrics``, the
fingerprint's ``analyze_case``, the dataset check, ``run_case_save``) get
absolute paths as arguments and read no environment variable.

nnU-Net's listing of a dataset's images (``create_lists_from_splitted_dataset_folder``,
five times per planning) matches file names against a pattern in a pool of twelve
processes forked from the caller, here the test process with torch loaded: about
1.5 s per planning, most of it in ``fork``. Here that pool is a pool of threads
(the work is pure Python on a list of names).

**Fewer intensity samples.** nnU-Net's fingerprint draws 10**8 foreground
intensities in all (10**8 / n per training case, with replacement) whatever the
dataset's size: for a tiny dataset of six 64 px scenes that is 400 MB of float32
made in the workers, pickled back and sorted for three percentiles, about 4 s of
CPU per planned dataset. Those statistics feed only nnU-Net's CT normalisation;
our datasets' channels are z-scored per image, so plans and preprocessed data do
not depend on them. Here the fingerprint draws :data:`FINGERPRINT_SAMPLES` in all.

**No progress plots.** At the end of every epoch nnU-Net draws ``progress.png``
(losses, Dice, epoch times) with matplotlib: about 0.8 s, longer than a tiny
training's epoch. No test reads it; here it is not drawn.

Processes the tests start with nnU-Net's or our console scripts
(``nnUNetv2_train``, ``nnunet-glacier``, ``nnUNetv2_plan_and_preprocess``) are
untouched: they spawn their workers and set their threads as nnU-Net and our
package do.
"""
from __future__ import annotations

import functools
import multiprocessing
import os
import sys

#: What the fork server imports once: the modules of nnU-Net's pool workers (and so torch).
PRELOAD = [
    "nnunetv2.inference.export_prediction",
    "nnunetv2.evaluation.evaluate_predictions",
    "nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
    "nnunetv2.experiment_planning.verify_dataset_integrity",
    "nnunetv2.preprocessing.preprocessors.default_preprocessor",
]
#: Foreground intensities the tests' fingerprints draw, over all training cases (nnU-Net: 10**8).
FINGERPRINT_SAMPLES = 10**5


def train_on_one_thread() -> None:
    """One torch thread for this process and its children; ``train_fold`` without ``threads`` keeps it."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from nnunet_glacier.nnunet import training

    train_fold = training.train_fold
    if getattr(train_fold, "on_one_thread", False):
        return

    @functools.wraps(train_fold)
    def train_fold_on_one_thread(*args, threads: int | None = None, **kwargs):
        return train_fold(*args, threads=threads or 1, **kwargs)

    train_fold_on_one_thread.on_one_thread = True  # type: ignore[attr-defined]
    training.train_fold = train_fold_on_one_thread


def start_nnunet_pools_from_a_fork_server() -> None:
    """Make ``multiprocessing.get_context("spawn")`` called from nnU-Net's modules return ``forkserver``."""
    get_context = multiprocessing.get_context
    if getattr(get_context, "nnunet_pools_from_fork_server", False):
        return
    fork_server = get_context("forkserver")
    fork_server.set_forkserver_preload(PRELOAD)

    def get_context_for(method: str | None = None):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if method == "spawn" and caller.startswith("nnunetv2."):
            return fork_server
        return get_context(method)

    get_context_for.nnunet_pools_from_fork_server = True  # type: ignore[attr-defined]
    multiprocessing.get_context = get_context_for


def list_dataset_files_in_threads() -> None:
    """nnU-Net's file listing (``nnunetv2.utilities.utils``) uses a thread pool instead of forked processes."""
    import multiprocessing.pool

    from nnunetv2.utilities import utils

    utils.Pool = multiprocessing.pool.ThreadPool  # type: ignore[attr-defined,misc]


def sample_fewer_fingerprint_intensities() -> None:
    """nnU-Net's ``DatasetFingerprintExtractor`` draws :data:`FINGERPRINT_SAMPLES` foreground intensities."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    init = DatasetFingerprintExtractor.__init__
    if getattr(init, "fewer_samples", False):
        return

    @functools.wraps(init)
    def init_with_fewer_samples(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.num_foreground_voxels_for_intensitystats = FINGERPRINT_SAMPLES

    init_with_fewer_samples.fewer_samples = True  # type: ignore[attr-defined]
    DatasetFingerprintExtractor.__init__ = init_with_fewer_samples  # type: ignore[method-assign]


def skip_progress_plots() -> None:
    """nnU-Net's training logger draws no ``progress.png``."""
    from nnunetv2.training.logging.nnunet_logger import MetaLogger

    MetaLogger.plot_progress_png = lambda self, output_folder: None  # type: ignore[method-assign]


def apply() -> None:
    """All of them, for this process (call before the test modules import ``train_fold``)."""
    train_on_one_thread()
    start_nnunet_pools_from_a_fork_server()
    list_dataset_files_in_threads()
    sample_fewer_fingerprint_intensities()
    skip_progress_plots()


if __name__ == "__main__":
    apply()
    from nnunet_glacier.cli import main

    sys.exit(main(sys.argv[1:]))
