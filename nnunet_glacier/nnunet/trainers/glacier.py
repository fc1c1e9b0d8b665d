"""``nnUNetTrainerGlacier``: nnU-Net's stock trainer with the schedule of our plans configuration.

It takes its schedule (epochs, iterations, learning rate, weight decay,
momentum, oversampling, deep supervision, checkpoint interval) from the plans
configuration's ``caffe_training`` block that :mod:`nnunet_glacier.nnunet.plans`
writes. Used for the single-task and fused-label experiments, and the base of
the multi-task trainers (:mod:`nnunet_glacier.nnunet.trainers.multitask`).
"""
from __future__ import annotations

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_glacier.errors import ConfigError


class nnUNetTrainerGlacier(nnUNetTrainer):
    """nnU-Net's trainer with the schedule read from the plans (``caffe_training``); see module docstring."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.momentum, self.nesterov = 0.99, True
        schedule = self.configuration_manager.configuration.get("caffe_training")
        if schedule is None:
            self.print_to_log_file(f"configuration {configuration!r} has no caffe_training block: "
                                   "keeping nnU-Net's default schedule")
            return
        if schedule["optimizer"] != "SGD" or schedule["lr_schedule"] != "poly":
            raise ConfigError(f"configuration {configuration!r}: only SGD with the poly schedule is supported")
        self.num_epochs = schedule["epochs"]
        self.num_iterations_per_epoch = schedule["iterations_per_epoch"]
        self.num_val_iterations_per_epoch = schedule["val_iterations_per_epoch"]
        self.initial_lr = schedule["initial_lr"]
        self.weight_decay = schedule["weight_decay"]
        self.momentum, self.nesterov = schedule["momentum"], schedule["nesterov"]
        self.oversample_foreground_percent = schedule["oversample_foreground"]
        self.enable_deep_supervision = schedule["deep_supervision"]
        self.save_every = schedule["save_every"]

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay,
                                    momentum=self.momentum, nesterov=self.nesterov)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)
