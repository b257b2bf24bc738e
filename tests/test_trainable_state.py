"""The trainable state (ftlab.trainable_state) on a tiny in-process CNN: what a checkpoint
keeps, that a state of another shape is refused by name, and the resume checks."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from ftlab.errors import CheckpointError
from ftlab.trainable_state import (
    check_fits,
    check_resume,
    load_trainable,
    trainable_only,
    trainable_state_keys,
)

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def tiny_cnn() -> nn.Module:
    """stem (frozen conv + frozen BN), block (trainable conv + trainable BN), head."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("stem", nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    model.add_module("block", nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))
    model.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)))
    model.stem.requires_grad_(False)
    return model


def test_keys_are_trainable_parameters_and_buffers_of_their_modules():
    model = tiny_cnn()
    expected = {
        "block.0.weight",
        "block.0.bias",
        "block.1.weight",
        "block.1.bias",
        *(f"block.1.{b}" for b in BN_BUFFERS),
        "head.2.weight",
        "head.2.bias",
    }
    assert trainable_state_keys(model) == expected
    assert set(trainable_only(model, model.state_dict())) == expected


def test_a_bn_with_only_one_trainable_affine_parameter_keeps_its_statistics():
    model = tiny_cnn()
    model.stem[1].bias.requires_grad_(True)
    keys = trainable_state_keys(model)
    assert {"stem.1.bias", *(f"stem.1.{b}" for b in BN_BUFFERS)} <= keys
    assert "stem.1.weight" not in keys and "stem.0.weight" not in keys


def test_load_reproduces_outputs_and_leaves_the_frozen_part_alone():
    model = tiny_cnn()
    fresh = copy.deepcopy(model)
    model.train()
    model(torch.randn(2, 3, 8, 8))  # moves the trainable BN's statistics
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(0.1)  # the frozen part too: it must not travel
    load_trainable(fresh, trainable_only(model, model.state_dict()))
    x = torch.randn(2, 3, 8, 8)
    model.stem.load_state_dict(fresh.stem.state_dict())  # the same frozen part on both sides
    assert torch.equal(model.eval()(x), fresh.eval()(x))
    assert torch.equal(fresh.stem[0].weight, tiny_cnn().stem[0].weight)


def test_a_mis_shaped_state_is_refused_with_the_shapes():
    model = tiny_cnn()
    state = trainable_only(model, model.state_dict())
    state["head.2.weight"] = torch.zeros(5, 4)
    message = (
        "ckpt.pt does not fit this model (shape mismatch head.2.weight: (5, 4) in ckpt.pt, "
        "(3, 4) here). Was it trained with another backbone, method or number of classes?"
    )
    with pytest.raises(CheckpointError, match=re.escape(message)):
        check_fits(model, state, "ckpt.pt")


def test_a_foreign_state_names_unknown_and_missing_keys():
    model = tiny_cnn()
    foreign = {"encoder.weight": torch.zeros(1), "block.0.weight": torch.zeros(4, 4, 3, 3)}
    with pytest.raises(
        CheckpointError,
        match=r"checkpoint does not fit this model \(1 unknown keys \(e.g. encoder.weight\), "
        r"8 trainable keys missing \(e.g. block.0.bias\)\)",
    ):
        check_fits(model, foreign)
    fresh = tiny_cnn()
    with pytest.raises(CheckpointError):
        load_trainable(fresh, foreign)
    assert torch.equal(fresh.block[0].weight, tiny_cnn().block[0].weight)  # nothing loaded


def test_resume_refuses_another_class_count_or_method():
    model = tiny_cnn()
    state = trainable_only(model, model.state_dict())
    checkpoint = {"state_dict": state, "ftlab": {"num_classes": 3, "method": {"name": "full"}}}
    check_resume(model, checkpoint, num_classes=3, method="full")
    check_resume(model, {"state_dict": state}, num_classes=3, method=None)  # older checkpoint
    with pytest.raises(CheckpointError, match="checkpoint has 3 classes, this data has 5."):
        check_resume(model, checkpoint, num_classes=5, method="full")
    with pytest.raises(
        CheckpointError,
        match="trained with method=full; this run uses method=lora. Resume with method=full",
    ):
        check_resume(model, checkpoint, num_classes=3, method="lora")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        check_resume(model, {**checkpoint, "state_dict": {}}, num_classes=3, method="full")
