"""The backbone contract: a module that turns a batch into pooled features."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
from torch import nn

from ftlab.backbones.anatomy import Anatomy, Capability, TokenSlot
from ftlab.errors import BackboneError, ConfigError

#: ``model.dtype`` values: how frozen weights are stored (what trains stays float32)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Backbone(nn.Module):
    """A pretrained network without its classifier: the contract between backbones and
    everything else.

    ``forward(batch)`` takes the data module's dict batch and returns pooled features of
    shape ``[B, anatomy.feature_dim]``; the LightningModule owns the head. What a method may
    know is :attr:`anatomy` (module names and :class:`~ftlab.backbones.anatomy.Capability`
    members); what it may *do* is call the hooks below, each tied to a capability. A family
    that lacks a capability leaves its hook as it is here, raising a :class:`BackboneError`
    that names the capability (methods check capabilities first, so users see a
    :class:`~ftlab.errors.MethodNotApplicable` sentence instead).
    """

    modality: str = "image"
    """What the data module must feed it: ``image`` (pixel values) or ``text`` (token ids)."""
    token_slot: TokenSlot | None = None
    """Tokens a method inserted after the embeddings (prompts, through ``TOKEN_INPUT``): a
    backbone honours the slot it is given, widening the padding mask there and removing the
    slot before pooling, so pooling sees only the real tokens."""
    channels_last: bool = False
    """Inputs go in NHWC (set by the module with its weights: faster convolutions on GPUs)."""
    quantization: str | None = None
    """``4bit``/``8bit`` when the frozen weights were loaded quantized (they cannot train)."""
    tokenizer: Any = None
    """The tokenizer of a text backbone (prompts started from words, ``TOKEN_EMBEDDINGS``);
    None for a backbone that reads pixels."""

    def __init__(self, label: str | None = None, dtype: str | None = None) -> None:
        super().__init__()
        self.label = label
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"model.dtype={dtype!r} is not one of {[*DTYPES, None]}.")
        self.frozen_dtype = DTYPES[dtype or "float32"]

    # -- what every backbone does --------------------------------------------------------
    @cached_property
    def anatomy(self) -> Anatomy:
        return self.describe()

    def describe(self) -> Anatomy:  # pragma: no cover - each family implements it
        """The anatomy, computed once (from the loaded model's structure and its library's
        own facts: timm's group matchers, transformers' config and model mappings)."""
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def preprocessing(self) -> Any:
        """What the data module needs to feed this backbone (timm data config or tokenizer)."""
        raise NotImplementedError

    def example_batch(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        """A small valid input, for shape checks and throughput measurements."""
        raise NotImplementedError

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute block activations in the backward pass (always the non-reentrant kind:
        the reentrant one silently gives LoRA weights no gradient)."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Parameter names (inside the backbone) that the family trains without weight
        decay beyond biases and norms: position embeddings, class tokens."""
        return set()

    def layer_id(self, param_name: str) -> int:
        """Layer id of a backbone parameter; parameters added later (LoRA, adapters) inherit
        the id of the block they sit in."""
        ids = self.anatomy.layer_ids
        if param_name in ids:
            return ids[param_name]
        for i, block in enumerate(self.anatomy.blocks, start=1):
            if param_name.startswith(block + "."):
                return i
        return self.anatomy.num_layers - 1

    # -- hooks behind capabilities -------------------------------------------------------
    def embed_token_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """``TOKEN_EMBEDDINGS``: what the module prompts join at makes of token ``ids``
        ``[T]``, as ``[T, feature_dim]`` vectors to start prompts from."""
        raise self._lacks(Capability.TOKEN_EMBEDDINGS)

    def extend_attention(self, name: str, kv: nn.Module) -> nn.Module:
        """``ATTENTION_KV``: make the self-attention ``name`` (one of
        ``anatomy.attention_kv``) also attend to the keys and values ``kv()`` returns, each
        ``[T, kv_dims[i]]``, from every query and whatever the padding (prefix tuning). The
        learned keys and values carry no position. Returns the module that now holds ``kv``
        as its ``prefix``."""
        raise self._lacks(Capability.ATTENTION_KV)

    def add_attention_prompts(self, name: str, tokens: nn.Module) -> nn.Module:
        """``ATTENTION_PROMPTS``: make the self-attention ``name`` (one of
        ``anatomy.attention_kv``) also attend to the tokens ``tokens()`` returns
        (``[T, block_width]``), turned into keys and values by the block's own norm and
        projections, as the block's own tokens are: VPT's prompts in a windowed transformer,
        where each window's attention sees the prompts (a deep prompt's outputs are replaced
        by the next block's, so only its keys and values matter). ``tokens`` stays owned by
        the caller. Returns the module that now holds the prompts' key/value source."""
        raise self._lacks(Capability.ATTENTION_PROMPTS)

    def lm_forward(self, input_ids: torch.Tensor, attention_mask=None, **kwargs: Any):
        """``LM_HEAD``: next-token logits ``[B, T, V]`` and the attention mask used, with a
        method's prompts inserted on the first call and a key/value cache for decoding
        (:meth:`ftlab.backbones.HFBackbone.lm_forward`)."""
        raise self._lacks(Capability.LM_HEAD)

    def _lacks(self, capability: Capability) -> BackboneError:
        return BackboneError(
            f"{self.label} ({self.anatomy.family}) does not offer {capability}; check "
            "anatomy.capabilities before calling its hook."
        )

    def quantized_cannot_train(self, what: str) -> ConfigError:
        return ConfigError(
            f"{what} would train quantized weights of {self.label} (model.quantization), "
            "which cannot train; use a method that adds what trains: lora, dora, adapter, "
            "prompt, prefix, bitfit or linear_probe."
        )

    def store_frozen_weights(self) -> int:
        """Wholly frozen modules' floating-point parameters in ``model.dtype`` (half the
        memory in bf16 or fp16); a module with anything trainable (a LoRA layer's own
        weights, a norm whose bias trains) all in float32, so the optimiser updates full
        precision and no operation mixes a half weight with a float32 bias. Called once a
        method has chosen what trains; returns the number of tensors cast. Mixed dtypes
        across modules need autocast: ``trainer.precision=bf16-mixed`` or ``16-mixed``."""
        cast = 0
        for prefix, module in self.named_modules():
            params = dict(module.named_parameters(recurse=False))
            trains = any(p.requires_grad for p in params.values())
            for name, param in params.items():
                if not param.is_floating_point():  # quantized weights (bitsandbytes: uint8)
                    if param.requires_grad:
                        raise self.quantized_cannot_train(f"{prefix}.{name}")
                    continue
                dtype = torch.float32 if trains else self.frozen_dtype
                if param.dtype != dtype:
                    param.data = param.data.to(dtype)
                    cast += 1
        return cast
