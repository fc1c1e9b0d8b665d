"""Multi-task networks and loss: output conventions, parameter counts, loss decomposition."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunet_glacier.data import labels
from nnunet_glacier.nnunet.networks import (
    MultiTaskUNet,
    joint_log_probabilities,
    task_log_probabilities,
    task_probabilities,
)
from nnunet_glacier.nnunet.trainers.multitask import MultiTaskLoss


def unet_kwargs(n_stages: int = 4, base: int = 8, max_features: int = 64) -> dict:
    return dict(n_stages=n_stages, features_per_stage=[min(base * 2 ** i, max_features) for i in range(n_stages)],
                conv_op=torch.nn.Conv2d, kernel_sizes=[[3, 3]] * n_stages,
                strides=[[1, 1]] + [[2, 2]] * (n_stages - 1), n_conv_per_stage=[2] * n_stages,
                n_conv_per_stage_decoder=[2] * (n_stages - 1), conv_bias=True, norm_op=torch.nn.InstanceNorm2d,
                norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                nonlin_kwargs={"inplace": True})


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("task_classes", [(4, 2), (4, 2, 2), (5,)])
def test_joint_log_probabilities_marginalise_back_to_each_task(task_classes):
    torch.manual_seed(0)
    logits = torch.randn(2, sum(task_classes), 5, 7) * 3
    joint = joint_log_probabilities(logits, task_classes)
    assert joint.shape == (2, int(np.prod(task_classes)), 5, 7)
    assert torch.allclose(torch.logsumexp(joint, 1), torch.zeros(2, 5, 7), atol=1e-5)  # a distribution
    for task_logits, marginal in zip(torch.split(logits, list(task_classes), 1),
                                     task_log_probabilities(joint, task_classes)):
        assert torch.allclose(torch.log_softmax(task_logits, 1), marginal, atol=1e-5)
    for task_logits, marginal in zip(torch.split(logits, list(task_classes), 1),
                                     task_probabilities(torch.softmax(joint, 1)[0].numpy(), task_classes)):
        assert np.allclose(torch.softmax(task_logits, 1)[0].numpy(), marginal, atol=1e-5)


def test_joint_argmax_decodes_to_each_tasks_argmax():
    torch.manual_seed(1)
    logits = torch.randn(3, 8, 6, 6)
    encoded = joint_log_probabilities(logits, (4, 2, 2)).argmax(1)
    zone, front, boundary = labels.decode_tasks(encoded, (4, 2, 2))
    assert torch.equal(zone, logits[:, :4].argmax(1))
    assert torch.equal(front, logits[:, 4:6].argmax(1))
    assert torch.equal(boundary, logits[:, 6:].argmax(1))


def test_late_branching_adds_only_output_channels():
    stock_zone = PlainConvUNet(1, num_classes=4, **unet_kwargs())
    late = MultiTaskUNet(1, 8, (4, 2), "late", **unet_kwargs())
    # two more channels in each decoder stage's 1x1 output conv (nnU-Net keeps one per stage for deep supervision)
    decoder_widths = unet_kwargs()["features_per_stage"][:-1]
    assert n_parameters(late) - n_parameters(stock_zone) == sum(2 * (width + 1) for width in decoder_widths)


def test_early_branching_has_one_decoder_per_task_and_about_half_more_parameters():
    kwargs = unet_kwargs(n_stages=7, base=32, max_features=512)  # the paper's 2-D nnU-Net widths
    late = MultiTaskUNet(1, 8, (4, 2), "late", **kwargs)
    early = MultiTaskUNet(1, 8, (4, 2), "early", **kwargs)
    assert len(early.extra_decoders) == 1 and len(late.extra_decoders) == 0
    encoder = {id(p) for p in early.encoder.parameters()}
    first = {id(p) for p in early.decoder.parameters()} - encoder  # decoders hold a reference to the encoder
    second = {id(p) for p in early.extra_decoders[0].parameters()} - encoder
    assert first and second and not first & second
    ratio = n_parameters(early) / n_parameters(late)
    assert 1.4 < ratio < 1.7, ratio


@pytest.mark.parametrize("branching", ["late", "early"])
def test_training_mode_gives_task_logits_and_eval_mode_joint_log_probabilities(branching):
    net = MultiTaskUNet(1, 8, (4, 2), branching, deep_supervision=True, **unet_kwargs())
    x = torch.randn(2, 1, 32, 32)
    net.train()
    outputs = net(x)
    assert [o.shape[1] for o in outputs] == [6, 6, 6]
    assert [o.shape[-1] for o in outputs] == [32, 16, 8]
    net.eval()
    net.decoder.deep_supervision = False
    with torch.no_grad():
        joint = net(x)
        task_logits = net.task_logits(x)
    assert joint.shape == (2, 8, 32, 32)
    assert torch.allclose(joint, joint_log_probabilities(task_logits, (4, 2)))


def test_wrong_number_of_classes_is_rejected():
    with pytest.raises(ValueError, match="encode 8 classes"):
        MultiTaskUNet(1, 5, (4, 2), "late", **unet_kwargs())
    with pytest.raises(ValueError, match="branching"):
        MultiTaskUNet(1, 8, (4, 2), "middle", **unet_kwargs())


def test_multitask_loss_is_the_weighted_sum_of_task_losses_in_both_output_forms():
    torch.manual_seed(2)
    stock = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                           weight_ce=1, weight_dice=1, dice_class=MemoryEfficientSoftDiceLoss)
    logits = torch.randn(2, 6, 16, 16)
    zone = torch.randint(0, 4, (2, 1, 16, 16))
    front = torch.randint(0, 2, (2, 1, 16, 16))
    target = zone + 4 * front
    loss = MultiTaskLoss(stock, (4, 2), (1.0, 0.5))
    expected = stock(logits[:, :4], zone) + 0.5 * stock(logits[:, 4:], front)
    assert torch.allclose(loss(logits, target), expected, atol=1e-5)
    joint = joint_log_probabilities(logits, (4, 2))
    assert torch.allclose(loss(joint, target), expected, atol=1e-4)


@pytest.mark.parametrize("name", ["stl_zone", "mtl_late", "mtl_early", "mtl_boundary"])
def test_nnunet_finds_our_trainer_classes_through_the_trainer_path(name, monkeypatch):
    """``nnUNetv2_train -tr NAME`` looks trainers up by name in ``nnUNet_extTrainer``: it must get our classes."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from nnunet_glacier.data.experiments import get_experiment
    from nnunet_glacier.nnunet import trainers
    from nnunet_glacier.nnunet.workspace import TRAINER_DIR

    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_DIR))
    trainer = get_experiment(name).trainer
    found = recursive_find_trainer_class_by_name(trainer)
    assert found.__module__.startswith(trainers.__name__ + ".") and found.__name__ == trainer


def test_regression_channels_train_after_the_tasks_and_stay_out_of_prediction():
    torch.manual_seed(2)
    network = MultiTaskUNet(1, 8, (4, 2), "late", regression_channels=1, deep_supervision=True, **unet_kwargs())
    x = torch.randn(2, 1, 32, 32)
    outputs = network(x)
    assert [o.shape[1] for o in outputs] == [7] * 3   # 4 zone + 2 front logits + 1 regression, every scale
    network.eval()
    network.decoder.deep_supervision = False
    with torch.no_grad():
        joint = network(x)
        logits = network.task_logits(x)
    assert joint.shape == (2, 8, 32, 32)              # prediction: the joint classes only
    assert torch.allclose(joint, joint_log_probabilities(logits[:, :6], (4, 2)))
    with pytest.raises(ValueError, match="late branching"):
        MultiTaskUNet(1, 8, (4, 2), "early", regression_channels=1, **unet_kwargs())


def test_front_distance_target_is_the_capped_chessboard_distance():
    from nnunet_glacier.nnunet.front_distance import FrontDistanceLoss, front_distance_target

    front = torch.zeros(1, 1, 7, 9)
    front[0, 0, :, 2] = 1                               # a vertical front in column 2
    target = front_distance_target(front, max_px=4)
    expected = torch.tensor([min(abs(c - 2), 4) / 4 for c in range(9)]).expand(7, 9)
    assert torch.allclose(target[0, 0], expected)
    assert torch.equal(front_distance_target(torch.zeros(1, 1, 3, 3), 4), torch.ones(1, 1, 3, 3))
    perfect = torch.logit(expected.clamp(1e-4, 1 - 1e-4))[None, None]
    assert FrontDistanceLoss(4)(perfect, front) < 1e-3 < FrontDistanceLoss(4)(-perfect, front)
