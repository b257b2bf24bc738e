"""Every Hugging Face family without BERT's module names (GPT-2, Llama/SmolLM, Qwen,
Mistral, Gemma, Phi, OPT, DistilBERT, DeBERTa, ModernBERT, MPNet, ...), described from its
structure: the repeated block stack, its linear layers, its attention and feed-forward
sub-modules, and its input embedding table. A family that names its sub-layers otherwise
gets one row of :data:`SUBLAYERS`.

Whether a model is an encoder or a decoder is transformers' own answer (:func:`text_kind`):
the model type's place in its masked-LM and causal-LM mappings, never a hand-kept list.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers.pytorch_utils import Conv1D

from ftlab.backbones.anatomy import Anatomy, assign_layer_ids
from ftlab.backbones.hf_attention import interface_attention, kv_width
from ftlab.errors import BackboneError, ConfigError

KINDS = ("auto", "encoder", "decoder")

#: where adapters go in families whose blocks the structural guess (an attention module and
#: an ``...MLP`` module) does not fit, relative to a block: the attention's output
#: projection, the module whose input is the feed-forward input, the one whose output is
#: its result (before the residual add)
SUBLAYERS = {
    "deberta-v2": ("attention.output.dense", "intermediate", "output.dense"),
    "mpnet": ("attention.attn.o", "intermediate", "output.dense"),
    "distilbert": ("attention.out_lin", "ffn", "ffn"),
    "opt": ("self_attn.out_proj", "fc1", "fc2"),
}

#: layer types whose weights LoRA can adapt, subclasses included (Falcon's FalconLinear);
#: transformers' GPT-2 uses its own Conv1D, a transposed linear layer
LINEAR_TYPES = (nn.Linear, Conv1D)


def text_kind(config: Any, declared: str = "auto") -> str:
    """``decoder`` (causal attention: pooled from the last real token, positions counted over
    real tokens) or ``encoder``, as transformers maps the model type: a masked-LM head means
    an encoder (BERT's family also has causal-LM heads), a causal-LM head alone a decoder.
    ``declared`` (``model.kind``) answers for a model type transformers maps to neither."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.model_type
    if declared not in KINDS:
        raise ConfigError(f"model.kind={declared!r} is not one of {list(KINDS)}.")
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(
            f"{kind} is an encoder-decoder model; ftlab fine-tunes encoders and decoder-only "
            "language models (BERT-type, GPT-2, Llama, Qwen, ...)."
        )
    found = (
        "encoder"
        if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        else "decoder"
        if kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        else None
    )
    if found is None and declared == "auto":
        raise BackboneError(
            f"transformers maps model type {kind!r} to neither a masked-LM nor a causal-LM "
            "head, so ftlab cannot tell whether it is an encoder (mean pooling, segment ids) "
            "or a decoder (last-token pooling); say which with model.kind=encoder or "
            "model.kind=decoder."
        )
    if found is not None and declared not in ("auto", found):
        raise ConfigError(
            f"model.kind={declared} but transformers maps {kind} to an {found}; leave "
            "model.kind=auto."
        )
    return found or declared


def block_stack(model: nn.Module) -> tuple[str, int] | None:
    """The longest ``ModuleList`` of same-type modules: the transformer's layers."""
    best: tuple[str, int] | None = None
    for name, sub in model.named_modules():
        if isinstance(sub, nn.ModuleList) and len(sub) > 0:
            kinds = {type(child) for child in sub}
            if len(kinds) == 1 and (best is None or len(sub) > best[1]):
                best = (name, len(sub))
    return best


def generic_anatomy(
    model: nn.Module,
    config: Any,
    kind: str,
    prompts: bool = False,
    leading_special: bool = False,
    kv_ok: bool = False,
) -> Anatomy | None:
    """Blocks, layer ids and LoRA presets found from the structure (None: no block stack).

    Layer ids: embedding tables 0, block i i+1, anything else (the final norm) N+1. LoRA
    presets: ``all_linear`` (every linear layer inside the blocks), ``attention`` (those
    inside a sub-module whose class says Attention), and ``default``: peft's own targets for
    this ``model_type`` where peft has them, else ``attention``. Adapters: where a block has
    an attention sub-module and an ``...MLP`` one (or the family has a row in
    :data:`SUBLAYERS`), around the attention's output projection
    (its last linear layer) and the MLP. ``prompts``: the input embedding table is where
    prompts go in (the backbone passes its output as ``inputs_embeds``), before the text on
    a decoder (causal attention), after the leading ``[CLS]`` on an encoder
    (``leading_special``). ``kv_ok``: prefixes in the module of each block that calls the
    attention interface (:mod:`ftlab.backbones.hf_attention`)."""
    found = block_stack(model)
    if found is None:
        return None
    stack, count = found
    blocks = [f"model.{stack}.{i}" for i in range(count)]
    embedding_params = {
        f"model.{mod}.{p}" if mod else f"model.{p}"
        for mod, sub in model.named_modules()
        if isinstance(sub, nn.Embedding)
        for p, _ in sub.named_parameters(recurse=False)
    }
    layer_ids = assign_layer_ids(
        ("model." + n for n, _ in model.named_parameters()), blocks, embedding_params.__contains__
    )
    linear, attention, mlp = set(), set(), set()
    attention_modules: list[str] = []
    attention_linears: list[str] = []
    mlp_modules: list[str] = []
    first = model.get_submodule(f"{stack}.0")
    for name, sub in first.named_modules():
        # transformers' attention and MLP classes share no base type, only their names
        class_name = type(sub).__name__
        if class_name.endswith("Attention") and "." not in name:
            attention_modules.append(name)
        if class_name.endswith("MLP") and "." not in name:
            mlp_modules.append(name)
        if isinstance(sub, LINEAR_TYPES):
            leaf = name.rpartition(".")[2]
            linear.add(leaf)
            if any(name.startswith(a + ".") for a in attention_modules[:1]):
                attention.add(name)  # "attn.Wo", not "Wo": ModernBERT's MLP has a Wo too
                attention_linears.append(name)
            if any(name.startswith(m + ".") for m in mlp_modules[:1]):
                mlp.add(name)
    sublayers = SUBLAYERS.get(config.model_type)
    if sublayers is None and attention_linears and mlp_modules:
        sublayers = (attention_linears[-1], mlp_modules[0], mlp_modules[0])
    embeddings = ""
    if prompts and model.get_input_embeddings() is not None:
        table = model.get_input_embeddings()
        embeddings = next(("model." + n for n, m in model.named_modules() if m is table), "")
    kv = interface_attention(first) if kv_ok else None
    presets: dict[str, list[str]] = {}
    if linear:
        presets["all_linear"] = sorted(linear)
    if attention:
        presets["attention"] = sorted(attention)
    if mlp:
        presets["mlp"] = sorted(mlp)
    peft_default = _peft_lora_targets(config.model_type)
    if peft_default and set(peft_default) <= linear:
        presets["default"] = list(peft_default)
    elif attention:
        presets["default"] = sorted(attention)
    return Anatomy(
        family=kind,
        blocks=blocks,
        layer_ids=layer_ids,
        feature_dim=config.hidden_size,
        attention=[f"{b}.{attention_modules[0]}" for b in blocks] if attention_modules else [],
        mlp=[f"{b}.{mlp_modules[0]}" for b in blocks] if mlp_modules else [],
        token_sequence=True,
        lora_targets=presets,
        embeddings=embeddings,
        special_tokens=1 if leading_special and kind == "encoder" else 0,
        token_embeddings=bool(embeddings),
        attention_kv=[f"{b}.{kv}" for b in blocks] if kv else [],
        kv_dims=[kv_width(first.get_submodule(kv), config)] * count if kv else [],
        attention_output=[f"{b}.{sublayers[0]}" for b in blocks] if sublayers else [],
        mlp_input=[f"{b}.{sublayers[1]}" for b in blocks] if sublayers else [],
        mlp_output=[f"{b}.{sublayers[2]}" for b in blocks] if sublayers else [],
    )


def _peft_lora_targets(model_type: str) -> list[str] | None:
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    except ImportError:  # an older or newer peft without the table
        return None
    targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    return list(targets) if targets else None
