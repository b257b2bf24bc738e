"""Parameter groups and the LR schedule (ftlab.optim) on tiny in-process modules: which
parameters decay, the method's LR scales and start epochs, warm-up + cosine, the gate."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from ftlab import optim
from ftlab.errors import ConfigError

LR, WD = 1e-3, 0.05


class Prompt(nn.Module):
    NO_WEIGHT_DECAY = ("tokens",)  # as a method's added module declares

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(3, 8))
        self.gate = nn.Parameter(torch.zeros(8, 8))


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.pos = nn.Parameter(torch.zeros(1, 3, 8))  # declared below: no decay
        self.tokens = nn.Parameter(torch.zeros(3, 8))  # not declared anywhere: decays
        self.prompt = Prompt()

    def no_weight_decay(self) -> set[str]:
        return {"pos"}


class Root(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.head = nn.Linear(8, 2)


class Method:
    """The two questions a method answers for the optimizer, by name prefix."""

    def __init__(self, scales=None, starts=None) -> None:
        self.scales, self.starts = scales or {}, starts or {}

    def lr_scale(self, root, name):
        return next((s for p, s in self.scales.items() if name.startswith(p)), 1.0)

    def start_epoch(self, root, name):
        return next((s for p, s in self.starts.items() if name.startswith(p)), 0)


def names_by_group(root, groups):
    names = {id(p): n for n, p in root.named_parameters()}
    return [{names[id(p)] for p in g["params"]} for g in groups]


NO_DECAY = {
    "backbone.embed.bias",  # a bias
    "backbone.norm.weight",  # 1-d
    "backbone.norm.bias",
    "backbone.pos",  # the backbone's no_weight_decay()
    "backbone.prompt.tokens",  # a leaf in its module's NO_WEIGHT_DECAY
    "head.bias",
}
DECAY = {"backbone.embed.weight", "backbone.tokens", "backbone.prompt.gate", "head.weight"}


def test_no_decay_on_biases_norms_and_declared_parameters():
    root = Root()
    groups = optim.param_groups(root, None, LR, WD)
    by_decay = {g["weight_decay"]: n for g, n in zip(groups, names_by_group(root, groups))}
    assert len(groups) == 2  # one LR: one group per decay
    assert by_decay[0.0] == NO_DECAY
    assert by_decay[WD] == DECAY


def test_weight_decay_norms_decays_everything():
    root = Root()
    groups = optim.param_groups(root, None, LR, WD, weight_decay_norms=True)
    assert [g["weight_decay"] for g in groups] == [WD]
    assert names_by_group(root, groups) == [NO_DECAY | DECAY]


def test_lr_scales_reach_the_groups_and_frozen_parameters_stay_out():
    root = Root()
    root.backbone.tokens.requires_grad_(False)
    scales = {"backbone.embed": 0.25, "backbone.norm": 0.5, "backbone.prompt": 0.5}
    method = Method(scales=scales)
    groups = optim.param_groups(root, method, LR, WD)
    for group, names in zip(groups, names_by_group(root, groups)):
        for name in names:
            assert group["lr"] == pytest.approx(LR * method.lr_scale(root, name)), name
            assert group["start_epoch"] == 0
    grouped = set().union(*names_by_group(root, groups))
    assert grouped == (NO_DECAY | DECAY) - {"backbone.tokens"}
    lrs = [g["lr"] for g in groups]
    assert lrs == sorted(lrs, reverse=True)  # highest first within a start epoch
    assert {g["lr"] for g in groups} == {LR, LR * 0.5, LR * 0.25}


def test_groups_are_ordered_by_start_epoch():
    root = Root()
    method = Method(scales={"head": 2.0}, starts={"backbone.embed": 2, "backbone.norm": 1})
    groups = optim.param_groups(root, method, LR, WD)
    starts = [g["start_epoch"] for g in groups]
    assert starts == sorted(starts) and set(starts) == {0, 1, 2}
    by_name = {n: g for g, names in zip(groups, names_by_group(root, groups)) for n in names}
    assert by_name["backbone.embed.weight"]["start_epoch"] == 2
    assert by_name["backbone.norm.weight"]["start_epoch"] == 1
    assert by_name["head.weight"]["lr"] == pytest.approx(2 * LR)


def test_nothing_trainable_is_a_config_error():
    root = Root().requires_grad_(False)
    with pytest.raises(ConfigError, match="nothing is trainable: the method froze every"):
        optim.param_groups(root, None, LR, WD)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (functools.partial(torch.optim.AdamW, lr=3e-4, weight_decay=0.05), (3e-4, 0.05)),
        (functools.partial(torch.optim.SGD, lr=0.1), (0.1, 0.0)),
        (functools.partial(torch.optim.Rprop, lr=0.01), (0.01, 0.0)),  # no weight_decay
    ],
)
def test_optimizer_defaults(factory, expected):
    assert optim.optimizer_defaults(factory) == expected


def run_schedule(groups, steps, **schedule):
    """The learning rate of each group during each of ``steps`` optimizer steps."""
    optimizer = torch.optim.SGD(groups)
    scheduler = optim.lr_scheduler(optimizer, **schedule)
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs, scheduler


def test_linear_warmup_then_cosine_to_the_floor():
    total, warmup, floor, base = 100, 10, 0.01, 0.1
    group = {"params": [nn.Parameter(torch.zeros(2))], "lr": base, "start_epoch": 0}
    lrs, _ = run_schedule(
        [group], 120, total_steps=total, max_epochs=1, warmup_fraction=0.1, min_lr_ratio=floor
    )
    lr = [step[0] / base for step in lrs]

    def cosine(step):
        progress = (step - warmup) / (total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    expected = {
        0: 1 / warmup,
        4: 5 / warmup,
        9: 1.0,
        10: 1.0,
        40: cosine(40),
        55: floor + (1 - floor) * 0.5,  # half-way down the cosine
        99: cosine(99),
        100: floor,
        119: floor,  # past the estimate, it stays at the floor
    }
    for step, value in expected.items():
        assert lr[step] == pytest.approx(value), step
    assert all(a < b for a, b in zip(lr[:10], lr[1:10]))
    assert all(a > b for a, b in zip(lr[10:100], lr[11:101]))


def test_no_warmup_starts_at_the_full_rate():
    group = {"params": [nn.Parameter(torch.zeros(2))], "lr": 0.1, "start_epoch": 0}
    lrs, _ = run_schedule(
        [group], 2, total_steps=10, max_epochs=1, warmup_fraction=0.0, min_lr_ratio=0.0
    )
    assert lrs[0][0] == pytest.approx(0.1)


def test_a_group_waits_at_zero_until_its_start_epoch_then_follows_the_shape():
    root = Root()
    method = Method(scales={"backbone": 0.5}, starts={"backbone": 2})
    groups = optim.param_groups(root, method, LR, WD)
    assert [g["start_epoch"] for g in groups] == [0, 0, 2, 2]
    epochs, per_epoch = 4, 10
    lrs, scheduler = run_schedule(
        groups,
        epochs * per_epoch,
        total_steps=epochs * per_epoch,
        max_epochs=epochs,
        warmup_fraction=0.25,  # the warm-up is the first epoch
        min_lr_ratio=0.01,
    )
    for step, (head, _, backbone, _) in enumerate(lrs):
        assert head > 0, step
        if step < 2 * per_epoch:
            assert backbone == 0.0, step
        else:  # the same point of the shape as the head's, at its own base rate
            assert backbone / (LR * 0.5) == pytest.approx(head / LR), step
    # plain functions, so the scheduler's state (in every checkpoint) holds none of them
    assert scheduler.state_dict()["lr_lambdas"] == [None] * 4
