"""Tiny random-weight backbones (timm ViT, 2-layer BERT with the MiniLM tokenizer) and the
helpers every method test uses: build a module, train a few steps, compare states."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ftlab.backbones import HFBackbone, TimmBackbone  # noqa: E402
from ftlab.backbones.assets import minilm_path  # noqa: E402
from ftlab.module import FineTuneModule  # noqa: E402

NUM_CLASSES = 3
TINY_BERT = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TEXTS = ["a short one", "a much longer sentence that needs padding here"]


@pytest.fixture(scope="session")
def vit_template() -> TimmBackbone:
    torch.manual_seed(0)
    return TimmBackbone(
        "vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32, "depth": 2}
    )


@pytest.fixture(scope="session")
def bert_template() -> HFBackbone:
    torch.manual_seed(0)
    backbone = HFBackbone(str(minilm_path()), pretrained=False, config_overrides=dict(TINY_BERT))
    with torch.no_grad():  # random init leaves biases at 0; make them count in the tests
        for name, param in backbone.named_parameters():
            if name.endswith("bias") and "LayerNorm" not in name:
                param.normal_(std=0.02)
    return backbone


@pytest.fixture(scope="session")
def minilm_template() -> HFBackbone:
    """The packaged all-MiniLM-L6-v2 with its real weights (slow tests only)."""
    return HFBackbone(str(minilm_path()))


@pytest.fixture(scope="session")
def templates(vit_template, bert_template) -> dict:
    return {"vit": vit_template, "bert": bert_template}


@pytest.fixture(scope="session")
def batches(bert_template) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    text = dict(bert_template.tokenizer(TEXTS, padding=True, return_tensors="pt"))
    return {
        "vit": {
            "pixel_values": torch.randn(2, 3, 32, 32, generator=g),
            "labels": torch.tensor([0, 2]),
        },
        "bert": {**text, "labels": torch.tensor([1, 2])},
    }


@pytest.fixture
def build(templates) -> Callable[..., FineTuneModule]:
    """``build(family, method=None)``: a fresh module on a copy of the family's template
    backbone (same weights every time) with the same head, the method applied if given."""

    def make(family: str, method=None, backbone=None) -> FineTuneModule:
        torch.manual_seed(123)
        module = FineTuneModule(
            backbone if backbone is not None else copy.deepcopy(templates[family]),
            num_classes=NUM_CLASSES,
            optimizer=functools.partial(torch.optim.AdamW, lr=1e-2),
        )
        if method is not None:
            method.apply(module)
        return module

    return make


def train_steps(module: FineTuneModule, batch: dict, steps: int = 3, lr: float = 1e-2) -> None:
    """A few AdamW steps over the trainable parameters, in training mode."""
    params = [p for _, p in module.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr)
    module.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = module.loss_fn(module(batch), batch["labels"])
        loss.backward()
        optimizer.step()
    module.eval()


#: what every backbone family must run (the others may refuse, with a sentence)
EVERYWHERE = {"linear_probe", "last_n", "full", "full_llrd", "gradual", "lora", "dora"}
#: bitfit runs wherever the blocks have biases (not Llama-type decoders)


@functools.cache
def _method_config(method_name: str):
    from tests.conftest import compose

    return compose([f"method={method_name}"], Path("unused")).method


def mechanisms() -> list[str]:
    """The method configs that the wide family tables (every timm and HF family) run: all
    but the peft tuner variants, which share one code path (``peft`` stands for them), and
    LoRA's initialisation variants (PiSSA, OLoRA). The contract table runs them all."""
    from ftlab.config import CONF_DIR

    names = []
    for path in sorted((CONF_DIR / "method").glob("*.yaml")):
        cfg = _method_config(path.stem)
        if cfg._target_ == "ftlab.methods.PeftTuner" and path.stem != "peft":
            continue
        if cfg._target_ == "ftlab.methods.LoRA" and cfg.get("init") not in (True, False):
            continue
        names.append(path.stem)
    return names


def method_from_config(method_name: str):
    """A fresh method from ``conf/method/<method_name>.yaml`` (composed once per name:
    Hydra's compose costs ~0.4 s, and the family tables build hundreds)."""
    from hydra.utils import instantiate

    return instantiate(_method_config(method_name))


def run_or_refuse(backbone, method_name: str, batch: dict, tmp_path) -> str:
    """The method config ``method_name`` on a copy of ``backbone``: two steps that move the
    head (and LoRA weights) and nothing frozen, or a one-sentence refusal naming the
    backbone. Returns "ran" or "refused: <the sentence>"."""
    from ftlab.errors import ConfigError, MethodNotApplicable

    method = method_from_config(method_name)
    backbone = copy.deepcopy(backbone)
    torch.manual_seed(0)
    module = FineTuneModule(
        backbone, num_classes=NUM_CLASSES, optimizer=functools.partial(torch.optim.AdamW, lr=1e-2)
    )
    try:
        method.apply(module)  # checks the anatomy first; a method may also refuse in modify
    except (MethodNotApplicable, ConfigError) as refusal:
        assert method_name not in EVERYWHERE, f"{method_name} refused: {refusal}"
        assert str(refusal).endswith(".") and backbone.label in str(refusal)
        return f"refused: {refusal}"
    before = snapshot(module)
    train_steps(module, batch, steps=2)
    trainable = {n for n, _ in module.trainable_parameters()}
    moved = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert moved <= trainable, f"frozen parameters changed: {sorted(moved - trainable)[:3]}"
    assert "head.1.weight" in moved
    if method_name in ("lora", "dora"):
        assert any("lora_" in n for n in moved), "no LoRA weight trained"
    return "ran"


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_only_method_trained(
    module: FineTuneModule, before: dict[str, torch.Tensor], batch: dict
) -> None:
    """After ``train_steps``: every frozen parameter bit-identical, every trainable one moved."""
    train_steps(module, batch)
    trainable = {n for n, _ in module.trainable_parameters()}
    for name, param in module.named_parameters():
        if name in trainable:
            assert not torch.equal(param, before[name]), f"{name} did not change"
        else:
            assert torch.equal(param, before[name]), f"frozen {name} changed"


def count(module: FineTuneModule) -> int:
    return sum(p.numel() for _, p in module.trainable_parameters())


def head_count(dim: int) -> int:
    return dim * NUM_CLASSES + NUM_CLASSES


@torch.no_grad()
def features(module: FineTuneModule, batch: dict) -> torch.Tensor:
    module.eval()
    return module(batch)


def gradients(module: FineTuneModule, batch: dict, bf16: bool = False) -> dict[str, torch.Tensor]:
    module.train()
    module.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = module.loss_fn(module(batch).float(), batch["labels"])
    loss.backward()
    return {n: p.grad for n, p in module.trainable_parameters()}


def first_alone(batch: dict) -> tuple[dict, int]:
    """The first sequence of a padded batch on its own, unpadded, and its length."""
    short = int(batch["attention_mask"][0].sum())
    assert short < batch["attention_mask"].shape[1], "the first sequence must be padded"
    return {k: v[:1, :short] for k, v in batch.items() if k != "labels"}, short


def assert_padding_invariant(backbone, batch: dict) -> None:
    """The pooled features of a sequence are the same alone and inside a padded batch."""
    alone, _ = first_alone(batch)
    with torch.no_grad():
        torch.testing.assert_close(backbone(batch)[0], backbone(alone)[0], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The functions above, for test modules (conftest is not importable by name)."""
    return SimpleNamespace(
        train_steps=train_steps,
        snapshot=snapshot,
        assert_only_method_trained=assert_only_method_trained,
        count=count,
        head_count=head_count,
        features=features,
        gradients=gradients,
        first_alone=first_alone,
        assert_padding_invariant=assert_padding_invariant,
    )


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot to them when other
    processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def copy_lora_into_peft(module: FineTuneModule, peft_model: torch.nn.Module) -> dict:
    """Copy ftlab's LoRA weights into a ``get_peft_model`` model of the same base, matched
    by module path (both sides must have exactly the same LoRA parameters). Returns
    ftlab's, by path."""
    ours = {
        n.removeprefix("backbone.model."): p for n, p in module.named_parameters() if "lora_" in n
    }
    theirs = {
        n.removeprefix("base_model.model."): p
        for n, p in peft_model.named_parameters()
        if "lora_" in n
    }
    assert ours and ours.keys() == theirs.keys()
    with torch.no_grad():
        for name, param in theirs.items():
            param.copy_(ours[name])
    return ours
