"""Hugging Face encoders whose modules carry BERT's names (BERT, RoBERTa, XLM-R, ELECTRA,
CamemBERT, Data2Vec-text, MiniLM): one row of names gives every method its sites."""

from __future__ import annotations

from typing import Any

from torch import nn

from ftlab.backbones.anatomy import Anatomy, assign_layer_ids

#: model types whose encoder layers carry BERT's module names
#: (``encoder.layer.N.attention.self.query`` ... ``output.dense``)
BERT_LIKE = frozenset({"bert", "roberta", "xlm-roberta", "electra", "camembert", "data2vec-text"})


def matches(model: nn.Module, config: Any) -> bool:
    return config.model_type in BERT_LIKE and hasattr(model, "encoder")


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
        kv_dims=[config.hidden_size] * len(blocks) if kv_ok else [],
        token_embeddings=True,
    )
