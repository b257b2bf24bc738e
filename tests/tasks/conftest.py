"""Tiny random decoders loaded with their LM head (Llama, Qwen2, GPT-2, and a Llama whose
head is tied to its input embeddings, as SmolLM2's is), and the helpers the task tests
share: a module on one of them, a method applied and its trainable weights moved."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.methods.test_hf_families import SMALL, model_dir  # noqa: E402

from ftlab.backbones import HFBackbone  # noqa: E402
from ftlab.backbones.assets import minilm_path  # noqa: E402
from ftlab.module import FineTuneModule  # noqa: E402
from ftlab.tasks import SFT  # noqa: E402

#: the decoder families every generative check runs on: rotary positions with grouped-query
#: attention (Llama), rotary with biased q/k/v (Qwen2), learned absolute positions and
#: transposed Conv1D layers (GPT-2)
LM_FAMILIES = ("llama", "qwen2", "gpt2")
PROMPTS = [
    "a short one",
    "a much longer prompt that needs no padding at all here",
    "a prompt of middling length",
]


@functools.cache
def tied_llama_dir(root: Path) -> Path:
    """A tiny Llama whose LM head is its input embedding table (SmolLM2's shape)."""
    import transformers

    path = root / "tied_llama"
    config = transformers.LlamaConfig(
        **SMALL,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        tie_word_embeddings=True,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.eos_token, tokenizer.pad_token = "[SEP]", None
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lm_models")


def liven(backbone: HFBackbone, seed: int = 0, std: float = 0.3) -> HFBackbone:
    """Random weights large enough that attention is peaked and the logits spread out:
    a wrong position or a leaked token then moves the output visibly (transformers'
    own initialisation, std 0.02, leaves every next-token distribution nearly flat)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in backbone.named_parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=g) * std)
            elif name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=g) * 0.1)
    return backbone


def lm_backbone(family: str, root: Path, **kwargs) -> HFBackbone:
    """A tiny random decoder of ``family`` with its LM head, left padding, lively weights."""
    path = tied_llama_dir(root) if family == "tied_llama" else model_dir(family, root)
    torch.manual_seed(0)
    options = {"pretrained": False, "lm_head": True, "padding_side": "left", **kwargs}
    return liven(HFBackbone(str(path), **options)).eval()


@pytest.fixture(scope="session")
def lm_templates(models_root) -> dict[str, HFBackbone]:
    """One backbone per family, built once: tests take a ``copy.deepcopy``."""
    return {family: lm_backbone(family, models_root) for family in (*LM_FAMILIES, "tied_llama")}


def lm_module(backbone: HFBackbone, method=None, task=None) -> FineTuneModule:
    """A module predicting with ``backbone``'s own LM head (``task``: sft without
    forgetting), ``method`` applied when given."""
    task = task or SFT(forgetting=None)
    module = FineTuneModule(backbone, num_classes=task.min_classes, task=task)
    if method is not None:
        method.apply(module)
    return module.eval()


def move_trainable(module: FineTuneModule, seed: int = 1, std: float = 0.5) -> int:
    """Noise on every trainable parameter, so that the method changes the model (LoRA's B
    starts at zero, adapters at the identity). Returns how many tensors moved."""
    g = torch.Generator().manual_seed(seed)
    moved = 0
    with torch.no_grad():
        for _, param in module.trainable_parameters():
            param.add_(torch.randn(param.shape, generator=g) * std)
            moved += 1
    return moved


def left_padded(backbone: HFBackbone, prompts=PROMPTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths in one left-padded batch (ids, mask)."""
    backbone.tokenizer.padding_side = "left"
    enc = backbone.tokenizer(list(prompts), padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert not mask[:, 0].all(), "some prompt must be padded"
    return ids, mask


def fresh(templates: dict[str, HFBackbone], family: str) -> HFBackbone:
    return copy.deepcopy(templates[family])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads and lose a lot to them on a shared
    CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
