"""The three CNN strategies (and gradual unfreezing) on a real timm CNN and real data:
what is frozen stays bit-identical, what trains changes, frozen BatchNorm stays frozen."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from ftlab import optim
from ftlab.errors import ConfigError
from ftlab.train import build, train
from tests.conftest import TINY_CNN, quiet_trainer

STRATEGIES = {
    "linear_probe": [],
    "last_n": ["method.n=2"],
    "full": [],
    "full_frozen_stem": ["method=full", "method.freeze_first=3"],
    "full_llrd": [],
    "gradual": [],
}


def _method_overrides(key):
    extra = STRATEGIES[key]
    return extra if any(o.startswith("method=") for o in extra) else [f"method={key}", *extra]


def _fit(cfg, steps=3, epochs=1):
    datamodule, _, module, method = build(cfg)
    trainer = quiet_trainer(
        max_epochs=epochs, max_steps=steps if epochs == 1 else -1, callbacks=[method]
    )
    return datamodule, module, method, trainer


@pytest.mark.parametrize("key", list(STRATEGIES))
def test_frozen_stays_identical_and_trainable_changes(key, make_cfg):
    cfg = make_cfg(*_method_overrides(key))
    datamodule, module, method, trainer = _fit(cfg)
    method.apply(module)  # what trains is known before fitting (idempotent with setup)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    if key == "gradual":  # only what trains at epoch 0 moves in the first epoch
        trainable = {n for n in trainable if method.start_epoch(module, n) == 0}
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 3
    after = module.state_dict()
    for name, _ in module.named_parameters():
        if name in trainable:
            assert not torch.equal(before[name], after[name]), f"{key}: {name} did not train"
        else:
            assert torch.equal(before[name], after[name]), f"{key}: frozen {name} changed"
    frozen_bn = [
        n for n, m in module.named_modules() if type(m).__name__.startswith("FrozenBatchNorm")
    ]
    for mod in frozen_bn:
        for buf in ("running_mean", "running_var"):
            key_name = f"{mod}.{buf}"
            assert torch.equal(before[key_name], after[key_name]), f"{key_name} moved"
    if key == "linear_probe":
        assert trainable == {"head.1.weight", "head.1.bias"}
        # every BatchNorm of the backbone is frozen, statistics included
        assert not any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.backbone.modules()
        )
        assert len(frozen_bn) > 40


def test_last_n_counts_the_backbones_own_blocks(make_cfg):
    _, module, _, _ = _fit(make_cfg("method=last_n", "method.n=1"))
    from ftlab.methods import LastN

    LastN(n=1).apply(module)
    blocks = module.backbone.anatomy.blocks
    trained_blocks = {
        b
        for b in blocks
        for n, p in module.backbone.named_parameters()
        if p.requires_grad and n.startswith(b + ".")
    }
    assert trained_blocks == {blocks[-1]}
    assert len(blocks) == 7  # EfficientNet-Lite0 has seven stages


def test_last_n_larger_than_the_backbone_is_refused(make_cfg):
    with pytest.raises(ConfigError, match=r"method.n=8 .* 7 blocks \(valid: 1..7\)"):
        train(make_cfg("method=last_n", "method.n=8"))


def test_each_strategy_runs_a_real_step_through_train(make_cfg):
    results = train(make_cfg("method=last_n", "method.n=1"))
    assert results["status"] == "done"
    assert 0 < results["params/trainable"] < results["params/total"]
    assert results["test/acc"] >= 0.0 and results["speed/train_samples_per_s"] > 0


class _RecordLR(pl.Callback):
    def __init__(self):
        self.by_epoch = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch not in self.by_epoch:
            groups = trainer.optimizers[0].param_groups
            self.by_epoch[trainer.current_epoch] = [(g["start_epoch"], g["lr"]) for g in groups]


def test_gradual_unfreezes_one_block_per_epoch(make_cfg):
    cfg = make_cfg("method=gradual", "method.every=1", "module.warmup_fraction=0")
    datamodule, module, method, trainer = _fit(cfg, epochs=4)
    recorder = _RecordLR()
    trainer.callbacks.append(recorder)
    method.apply(module)
    stem = {n for n, p in module.named_parameters() if p.requires_grad and "conv_stem" in n}
    assert stem  # every scheduled layer is in the optimizer from the start (DDP-safe)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trainer.fit(module, datamodule=datamodule)
    for epoch, groups in recorder.by_epoch.items():
        starts = {start for start, _ in groups}
        assert starts == set(range(0, 9)), "groups for head+neck, 7 blocks, stem"
        for start, lr in groups:
            assert (lr > 0) == (start <= epoch), f"epoch {epoch}: group from {start} has lr {lr}"
    assert sorted(recorder.by_epoch) == [0, 1, 2, 3]
    after = module.state_dict()
    # after 4 epochs the stem (unfreezes at epoch 8) has not moved, the last block has
    assert all(torch.equal(before[n], after[n]) for n in stem)
    last_block = module.backbone.anatomy.blocks[-1]
    moved = [n for n in before if n.startswith(f"backbone.{last_block}.") and n.endswith("weight")]
    assert moved and all(not torch.equal(before[n], after[n]) for n in moved)


def test_weight_decay_skips_norms_biases_embeddings_and_virtual_tokens(make_cfg):
    """Decided by what the backbone family and the method's modules declare, not by
    names: timm's no_weight_decay (pos_embed, cls_token), prompt tokens, prefix keys."""
    vit = [
        *[o for o in TINY_CNN if not o.startswith("model")],
        "model=vit_tiny", "model.pretrained=false",
        "+model.model_kwargs.img_size=32", "+model.model_kwargs.depth=2",
    ]  # fmt: skip
    for method, no_decay in (
        ("full", {"backbone.model.pos_embed", "backbone.model.cls_token"}),
        ("prompt", {"backbone.model.blocks.0.prompt.tokens"}),
        ("prefix", {"backbone.model.blocks.0.attn.prefix.key"}),
    ):
        _, _, module, callback = build(make_cfg(f"method={method}", base=vit, name=method))
        callback.apply(module)
        spared = optim.backbone_no_weight_decay(module)
        decays = {
            n: optim.decays(module, n, p, spared, module.weight_decay_norms)
            for n, p in module.trainable_parameters()
        }
        assert {n for n in no_decay if n in decays} == no_decay, (method, sorted(decays)[:8])
        assert not any(decays[n] for n in no_decay)
        assert decays["head.1.weight"] and not decays["head.1.bias"]
        if method == "full":
            assert decays["backbone.model.blocks.0.attn.qkv.weight"]
            assert not decays["backbone.model.blocks.0.norm1.weight"]


def test_a_trainable_parameter_without_gradient_is_named(make_cfg):
    with pytest.warns(UserWarning, match=r"got no gradient in the first step \(backbone.orphan\)"):
        train(make_cfg("method=last_n", "+callbacks.orphan._target_=tests.faults.OrphanParameter"))
