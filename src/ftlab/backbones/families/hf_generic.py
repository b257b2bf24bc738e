"""How a Hugging Face model describes its anatomy, by what its config says it is.

One table keyed by ``config.model_type`` (the way peft keys its LoRA targets): families
whose modules carry BERT's names get the full BERT anatomy (every method); decoder-only
families are pooled from the last real token; any other model gets the generic anatomy,
found from its structure: the repeated block stack, its linear layers and its embeddings,
which is enough for linear_probe, last_n, full, gradual, bitfit and LoRA. Adapter sites
come from that structure too, or from a row of :data:`SUBLAYERS` where a family's blocks
name them otherwise.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ftlab.backbones.anatomy import Anatomy, assign_layer_ids
from ftlab.backbones.hf_attention import interface_attention, kv_width

#: model types whose encoder layers carry BERT's module names
#: (``encoder.layer.N.attention.self.query`` ... ``output.dense``)
BERT_LIKE = frozenset({"bert", "roberta", "xlm-roberta", "electra", "camembert", "data2vec-text"})

#: decoder-only model types: causal attention, so the last real token has seen the text
DECODERS = frozenset(
    {
        "gpt2", "gpt_neo", "gptj", "gpt_neox", "opt", "bloom", "falcon",
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
        "gemma", "gemma2", "gemma3_text", "phi", "phi3", "olmo", "olmo2", "smollm3",
        "stablelm", "starcoder2", "granite", "cohere",
    }
)  # fmt: skip

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

#: linear layer types whose weights LoRA can adapt (transformers' GPT-2 uses Conv1D)
LINEAR_NAMES = ("Linear", "Conv1D")


def is_decoder(config: Any) -> bool:
    return config.model_type in DECODERS


def bert_anatomy(model: nn.Module, config: Any, has_cls: bool, kv_ok: bool) -> Anatomy:
    """BERT-named encoders: every method (prompts after ``[CLS]``, adapters around the
    attention and feed-forward outputs, prefixes in the self-attention)."""
    layers = model.encoder.layer
    blocks = [f"model.encoder.layer.{i}" for i in range(len(layers))]
    layer_ids = assign_layer_ids(
        ("model." + n for n, _ in model.named_parameters()),
        blocks,
        lambda name: name.startswith("model.embeddings."),
    )
    return Anatomy(
        family="encoder",
        blocks=blocks,
        layer_ids=layer_ids,
        feature_dim=config.hidden_size,
        attention=[b + ".attention" for b in blocks],
        mlp=[b + ".intermediate" for b in blocks],
        token_sequence=True,
        lora_targets={
            "default": ["query", "value"],
            "attention": ["query", "key", "value", "attention.output.dense"],
            "all_linear": ["query", "key", "value", "dense"],
            # full names: a suffix "output.dense" would also match attention.output.dense
            "mlp": [f"{b}.{sub}.dense" for b in blocks for sub in ("intermediate", "output")],
        },
        embeddings="model.embeddings",
        special_tokens=1 if has_cls else 0,
        attention_output=[b + ".attention.output.dense" for b in blocks],
        mlp_input=[b + ".intermediate" for b in blocks],
        mlp_output=[b + ".output.dense" for b in blocks],
        attention_kv=[b + ".attention.self" for b in blocks] if kv_ok else [],
        kv_dim=config.hidden_size if kv_ok else 0,
        token_embeddings=True,
    )


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
        kind = type(sub).__name__
        if kind.endswith("Attention") and "." not in name:
            attention_modules.append(name)
        if kind.endswith("MLP") and "." not in name:
            mlp_modules.append(name)
        if kind in LINEAR_NAMES:
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
        family="decoder" if is_decoder(config) else "encoder",
        blocks=blocks,
        layer_ids=layer_ids,
        feature_dim=config.hidden_size,
        attention=[f"{b}.{attention_modules[0]}" for b in blocks] if attention_modules else [],
        mlp=[f"{b}.{mlp_modules[0]}" for b in blocks] if mlp_modules else [],
        token_sequence=True,
        lora_targets=presets,
        embeddings=embeddings,
        special_tokens=1 if leading_special and not is_decoder(config) else 0,
        token_embeddings=bool(embeddings),
        attention_kv=[f"{b}.{kv}" for b in blocks] if kv else [],
        kv_dim=kv_width(first.get_submodule(kv), config) if kv else 0,
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
