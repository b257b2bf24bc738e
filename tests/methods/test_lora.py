"""LoRA through peft on every backbone family: counts, freezing, equality with peft used
directly, merge equality in fp32, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch
from tests.methods.conftest import copy_lora_into_peft

from ftlab.backbones import HFBackbone, TimmBackbone
from ftlab.backbones.assets import minilm_path
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.methods import LoRA
from ftlab.module import FineTuneModule


def vit():
    return TimmBackbone(
        "vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32, "depth": 2}
    )


def bert():
    return HFBackbone(
        str(minilm_path()),
        pretrained=False,
        config_overrides={
            "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
            "intermediate_size": 64,
        },
    )  # fmt: skip


def cnn():
    return TimmBackbone("tf_efficientnet_lite0", pretrained=False)


FAMILIES = {"vit": vit, "bert": bert, "cnn": cnn}


def build(family, seed=0, **lora):
    torch.manual_seed(seed)
    module = FineTuneModule(FAMILIES[family](), num_classes=3)
    method = LoRA(**lora)
    method.apply(module)
    return module, method


def batch(module, seed=1):
    torch.manual_seed(seed)
    b = module.backbone
    return b.example_batch(4, 32) if b.modality == "image" else b.example_batch(4, 12)


def randomize_lora(module, seed=2):
    """LoRA B starts at zero; give it values so equalities are not trivially 0 == 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def expected_count(module, r):
    """r * (fan_in + fan_out) for each targeted layer, + the head."""
    total = sum(p.numel() for p in module.head.parameters())
    for _, sub in module.backbone.named_modules():
        base = getattr(sub, "base_layer", None)
        if isinstance(base, torch.nn.Linear):
            total += r * (base.in_features + base.out_features)
        elif isinstance(base, torch.nn.Conv2d):
            total += r * base.in_channels * base.kernel_size[0] * base.kernel_size[1]
            total += base.out_channels * r
    return total


@pytest.mark.parametrize("family", FAMILIES)
def test_counts_freezing_and_training(family):
    module, method = build(family, r=4)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert all("lora_" in n or n.startswith("head.") for n in trainable)
    n_targets = len(method.target_modules(module.backbone))
    wrapped = [n for n, m in module.backbone.named_modules() if hasattr(m, "base_layer")]
    assert wrapped and (family == "cnn" or len(wrapped) == n_targets * 2)
    count = sum(p.numel() for p in module.parameters() if p.requires_grad)
    assert count == expected_count(module, r=4)

    x = batch(module)
    x["labels"] = torch.tensor([0, 1, 2, 0])
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(module(x), x["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = module.state_dict()
    for name, param in module.named_parameters():
        same = torch.equal(before[name], after[name])
        assert same != param.requires_grad, f"{name}: trainable={param.requires_grad}"


@pytest.mark.parametrize("family", ["vit", "bert"])
def test_zero_init_lora_equals_the_base_model(family):
    torch.manual_seed(0)
    module = FineTuneModule(FAMILIES[family](), num_classes=3).eval()
    x = batch(module)
    base = module(x)
    LoRA(r=4).apply(module)
    assert torch.equal(module(x), base)


@pytest.mark.parametrize("family", ["vit", "bert"])
def test_same_as_peft_used_directly(family):
    from peft import LoraConfig, get_peft_model

    module, method = build(family, r=4, alpha=8)
    randomize_lora(module)
    module.eval()
    torch.manual_seed(0)
    plain = FAMILIES[family]()  # same seed: the same random weights as `module`'s
    targets = method.target_modules(plain)
    peft_model = get_peft_model(plain.model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    copy_lora_into_peft(module, peft_model)
    peft_model.eval()
    x = batch(module)
    features = module.backbone(x)
    plain.model = peft_model
    torch.testing.assert_close(plain(x), features, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_merge_equals_unmerged_in_fp32(family):
    module, method = build(family, r=4)
    randomize_lora(module)
    module.eval()
    x = batch(module)
    unmerged = module(x)
    assert method.merge(module) > 0
    assert not any("lora_" in n for n, _ in module.named_parameters())
    torch.testing.assert_close(module(x), unmerged, rtol=1e-5, atol=1e-5)


def test_bad_sizes_and_presets():
    with pytest.raises(ConfigError, match="method.r=0"):
        LoRA(r=0)
    module = FineTuneModule(cnn(), num_classes=3)
    with pytest.raises(MethodNotApplicable, match="targets the 'attention' preset, which"):
        LoRA(targets="attention").apply(module)


def test_grad_checkpointing_from_the_model_config(make_cfg):
    """model.grad_checkpointing=true trains LoRA weights (the non-reentrant kind)."""
    from tests.conftest import TINY_CNN

    from ftlab.train import train

    base = [o for o in TINY_CNN if not o.startswith("model")]
    cfg = make_cfg(
        "model=vit_tiny", "model.pretrained=false", "+model.model_kwargs.img_size=32",
        "+model.model_kwargs.depth=2", "model.grad_checkpointing=true", "method=lora",
        base=base,
    )  # fmt: skip
    from ftlab.train import build

    assert build(cfg)[1].model.grad_checkpointing
    results = train(cfg)
    assert results["status"] == "done" and results["params/trainable"] < 100_000
