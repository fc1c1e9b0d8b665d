"""Training-step and prediction time of our trainers and predictor against nnU-Net's own.

Baselines, measured in the same run on the same synthetic data:

- training: nnU-Net's stock ``nnUNetTrainer`` on the single-task zone dataset;
  ours (``nnUNetTrainerGlacier``, ``nnUNetTrainerMTLLate``, ``...MTLEarly``,
  ``...MTLBoundary``) at the same patch and batch size and nnU-Net's default
  network widths (32..512 features). Timed: ``train_step`` on a fixed batch
  (forward, loss, backward, optimiser step), after one warm-up step.
- prediction: nnU-Net's ``nnUNetPredictor.predict_single_npy_array`` against
  our ``GlacierPredictor.predict`` (which also splits tasks and returns
  probabilities), both on the MTL late model (one fold, same image, same
  tile step and mirroring).

Usage: ``python benchmarks/bench_mtl.py [--patch 128] [--batch 2] [--steps 5] [--device auto]``.
Prints seconds per step / per image and the ratios to the baselines.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("nnUNet_n_proc_DA", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nnunet_glacier.data.caffe import read_grey  # noqa: E402
from nnunet_glacier.data.experiments import get_experiment  # noqa: E402
from nnunet_glacier.data.synthetic import generate_caffe  # noqa: E402
from nnunet_glacier.nnunet.export import export_dataset  # noqa: E402
from nnunet_glacier.nnunet.plans import plan_and_preprocess, write_configuration  # noqa: E402
from nnunet_glacier.nnunet.training import resolve_device  # noqa: E402
from nnunet_glacier.nnunet.workspace import Workspace  # noqa: E402

TRAINERS = [("nnUNetTrainer", "stl_zone"), ("nnUNetTrainerGlacier", "stl_zone"),
            ("nnUNetTrainerMTLLate", "mtl_late"), ("nnUNetTrainerMTLEarly", "mtl_early"),
            ("nnUNetTrainerMTLBoundary", "mtl_boundary")]


def bench_experiment(name: str, patch: int, batch: int):
    """The experiment with a ``2d_bench`` configuration: nnU-Net's default widths at ``patch``."""
    experiment = get_experiment(name)
    plan = dataclasses.replace(experiment.plan, patch_size=(patch, patch), batch_size=batch)
    return dataclasses.replace(experiment, plan=plan, profile="bench")


def prepare(workspace: Workspace, data: Path, patch: int, batch: int) -> None:
    done = set()
    for _, name in TRAINERS:
        experiment = bench_experiment(name, patch, batch)
        if experiment.dataset_id in done:
            continue
        export_dataset(data, experiment, workspace.raw, progress=False)
        plan_and_preprocess(experiment, workspace, num_processes=2)
        write_configuration(experiment, workspace)
        done.add(experiment.dataset_id)


def time_training_steps(trainer_name: str, experiment, steps: int, device: torch.device):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(experiment.dataset, experiment.configuration, 0, trainer_name, device=device)
    trainer.on_train_start()
    trainer.network.train()
    batch = next(trainer.dataloader_train)
    trainer.train_step(batch)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    trainer.save_checkpoint(str(Path(trainer.output_folder) / "checkpoint_final.pth"))
    parameters = sum(p.numel() for p in trainer.network.parameters())
    return seconds, parameters, Path(trainer.output_folder_base)


def time_prediction(model: Path, image: np.ndarray, device: torch.device, repeats: int) -> tuple[float, float]:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from nnunet_glacier.nnunet.predict import GlacierPredictor

    theirs = nnUNetPredictor(device=device, allow_tqdm=False)
    theirs.initialize_from_trained_model_folder(str(model), (0,), "checkpoint_final.pth")
    ours = GlacierPredictor(model, [0], device=device.type)
    array = image.astype(np.float32)[None, None]
    timings = []
    for run in (lambda: theirs.predict_single_npy_array(array, {"spacing": [999, 1, 1]}),
                lambda: ours.predict(image)):
        run()  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            run()
        timings.append((time.perf_counter() - start) / repeats)
    return timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, default=128, help="square patch edge in pixels (default 128)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per trainer (default 5)")
    parser.add_argument("--image", type=int, default=384, help="edge of the predicted image in pixels (default 384)")
    parser.add_argument("--repeats", type=int, default=2, help="timed predictions per predictor (default 2)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    device = resolve_device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "caffe"
        generate_caffe(data, n_train=10, n_test=1, size=(args.image, args.image), seed=0)
        workspace = Workspace.from_work_dir(Path(tmp) / "work").activate()
        prepare(workspace, data, args.patch, args.batch)

        rows, models = [], {}
        for trainer_name, name in TRAINERS:
            seconds, parameters, model = time_training_steps(trainer_name, bench_experiment(name, args.patch, args.batch),
                                                             args.steps, device)
            rows.append((trainer_name, name, seconds, parameters))
            models[trainer_name] = model
        baseline = rows[0][2]
        print(f"\ntraining step, patch {args.patch}x{args.patch}, batch {args.batch}, device {device.type} "
              f"(baseline: nnU-Net's stock nnUNetTrainer on the zone dataset)")
        print(f"{'trainer':<26} {'experiment':<13} {'s/step':>8} {'ratio':>7} {'parameters':>12}")
        for trainer_name, name, seconds, parameters in rows:
            print(f"{trainer_name:<26} {name:<13} {seconds:>8.3f} {seconds / baseline:>7.2f} {parameters:>12,}")

        image = read_grey(next((data / "sar_images" / "test").glob("*.png")))
        theirs, ours = time_prediction(models["nnUNetTrainerMTLLate"], image, device, args.repeats)
        print(f"\nprediction of one {image.shape[1]}x{image.shape[0]} image, MTL late model, one fold "
              f"(baseline: nnU-Net's nnUNetPredictor.predict_single_npy_array)")
        print(f"nnU-Net predictor   {theirs:8.3f} s")
        print(f"GlacierPredictor    {ours:8.3f} s   ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
