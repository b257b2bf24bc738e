"""Hugging Face text encoders (BERT family) as ftlab backbones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ftlab.backbones.anatomy import Anatomy
from ftlab.backbones.base import Backbone
from ftlab.errors import BackboneError, ConfigError

POOLINGS = ("mean", "cls")


class HFEncoderBackbone(Backbone):
    """A Hugging Face encoder by hub id or local path, pooled to one vector per text.

    ``pretrained=false`` builds the same architecture with random weights;
    ``config_overrides`` changes the architecture (e.g. a 2-layer encoder for tests).
    """

    modality = "text"

    def __init__(
        self,
        name: str,
        pretrained: bool = True,
        pooling: str = "mean",
        config_overrides: dict[str, Any] | None = None,
        attn_implementation: str = "sdpa",
        label: str | None = None,
    ) -> None:
        super().__init__(label=label or Path(str(name)).name)
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={pooling!r} is not one of {list(POOLINGS)}.")
        self.name = str(name)
        self.pooling = pooling
        transformers.logging.set_verbosity_error()
        local = Path(self.name).is_dir()
        offline = local or os.environ.get("HF_HUB_OFFLINE") == "1"
        try:
            config = AutoConfig.from_pretrained(self.name, local_files_only=offline)
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, local_files_only=offline)
        except (OSError, ValueError) as err:
            where = "local directory" if local else "Hugging Face model id"
            raise BackboneError(
                f"model.name={self.name!r} could not be loaded as a {where} "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]}). Use a directory with "
                "config.json and tokenizer files, model=minilm for the packaged MiniLM, or a hub id "
                "when online."
            ) from err
        for key, value in (config_overrides or {}).items():
            if not hasattr(config, key):
                raise ConfigError(
                    f"model.config_overrides.{key} is not a field of {type(config).__name__}."
                )
            setattr(config, key, value)
        config._attn_implementation = attn_implementation
        kwargs = {"add_pooling_layer": False} if config.model_type == "bert" else {}
        if pretrained and not config_overrides:
            self.model = AutoModel.from_pretrained(
                self.name, config=config, local_files_only=offline, **kwargs
            )
        elif pretrained:
            raise ConfigError(
                "model.config_overrides changes the architecture, so pretrained weights cannot "
                "load; set model.pretrained=false."
            )
        else:
            self.model = AutoModel.from_config(config, **kwargs)
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.forward_tokens(batch)
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch
        }
        return self.model(**inputs).last_hidden_state

    def preprocessing(self):
        return self.tokenizer

    def example_batch(self, batch_size: int = 2, seq_len: int = 16) -> dict[str, torch.Tensor]:
        ids = torch.randint(1000, min(self.config.vocab_size, 30000), (batch_size, seq_len))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def describe(self) -> Anatomy:
        encoder = getattr(self.model, "encoder", None)
        layers = getattr(encoder, "layer", None)
        if layers is None:
            raise BackboneError(
                f"{self.name!r} ({self.config.model_type}) has no `encoder.layer` stack; ftlab "
                "supports BERT-type encoders (BERT, RoBERTa, MiniLM, ELECTRA)."
            )
        blocks = [f"model.encoder.layer.{i}" for i in range(len(layers))]
        layer_ids = {}
        for name, _ in self.model.named_parameters():
            full = "model." + name
            if name.startswith("embeddings."):
                layer_ids[full] = 0
            elif name.startswith("encoder.layer."):
                layer_ids[full] = int(name.split(".")[2]) + 1
            else:
                layer_ids[full] = len(blocks) + 1
        return Anatomy(
            family="encoder",
            blocks=blocks,
            layer_ids=layer_ids,
            feature_dim=self.config.hidden_size,
            attention=[b + ".attention" for b in blocks],
            mlp=[b + ".intermediate" for b in blocks],
            token_sequence=True,
            lora_targets={
                "default": ["query", "value"],
                "attention": ["query", "key", "value", "attention.output.dense"],
                "all_linear": ["query", "key", "value", "dense"],
            },
        )
