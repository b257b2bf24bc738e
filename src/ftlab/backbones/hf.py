"""Hugging Face text models as ftlab backbones: encoders (BERT and its relatives, and any
other with a block stack) and decoder-only language models, pooled to one vector per text.
What each family offers methods is described in :mod:`ftlab.backbones.families`
(:mod:`~ftlab.backbones.families.hf_bert`, :mod:`~ftlab.backbones.families.hf_generic`)."""

from __future__ import annotations

import dataclasses
import inspect
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from ftlab.backbones.anatomy import Anatomy, Capability, prompts_in_cache
from ftlab.backbones.base import Backbone
from ftlab.backbones.families import hf_bert
from ftlab.backbones.families.hf_generic import generic_anatomy, text_kind
from ftlab.backbones.hf_attention import KV_EXTENSIBLE, add_prefix
from ftlab.errors import BackboneError, ConfigError, one_line, suggest
from ftlab.plain import plain

POOLINGS = ("auto", "mean", "cls", "last")
PADDING_SIDES = ("left", "right")


class HFBackbone(Backbone):
    """A Hugging Face text model by hub id or local path, pooled to one vector per text:
    an encoder or a decoder-only language model, as transformers' own model mappings say
    (``kind=auto``; ``encoder``/``decoder`` for a model type they do not map).

    ``pretrained=false`` builds the same architecture with random weights;
    ``config_overrides`` changes the architecture (e.g. a 2-layer model for tests).
    ``pooling=auto``: the last real token for a decoder (causal attention: only it has
    seen the whole text), the mean over real tokens for an encoder. A tokenizer
    without a pad token (GPT-2, Llama) pads with ``pad_token`` or else its EOS token.
    """

    modality = "text"

    def __init__(
        self,
        name: str,
        pretrained: bool = True,
        pooling: str = "auto",
        config_overrides: dict[str, Any] | None = None,
        attn_implementation: str = "sdpa",
        label: str | None = None,
        grad_checkpointing: bool = False,
        pad_token: str | None = None,
        padding_side: str | None = None,
        dtype: str | None = None,
        quantization: str | None = None,
        kind: str = "auto",
        lm_head: bool = False,
    ) -> None:
        super().__init__(label=label or Path(str(name)).name, dtype=dtype)
        if quantization is not None:
            kwargs_quantized = _quantization(quantization, pretrained, self.frozen_dtype)
        if pooling not in POOLINGS:
            raise ConfigError(f"model.pooling={pooling!r} is not one of {list(POOLINGS)}.")
        if padding_side not in (None, *PADDING_SIDES):
            raise ConfigError(
                f"model.padding_side={padding_side!r} is not one of {list(PADDING_SIDES)} or null."
            )
        self.name = str(name)
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        local = Path(self.name).is_dir()
        offline = local or os.environ.get("HF_HUB_OFFLINE") == "1"
        try:
            config = AutoConfig.from_pretrained(self.name, local_files_only=offline)
            self.tokenizer = AutoTokenizer.from_pretrained(self.name, local_files_only=offline)
        except (OSError, ValueError) as err:
            where = "local directory" if local else "Hugging Face model id"
            raise BackboneError(
                f"model.name={self.name!r} could not be loaded as a {where} "
                f"({type(err).__name__}: {one_line(err, 200)})."
                f"{suggest(self.name, _cached_model_ids())} Use a directory with "
                "config.json and tokenizer files, model=minilm for the packaged MiniLM, or a hub id "
                "when online."
            ) from err
        for key, value in (plain(config_overrides) or {}).items():
            if not hasattr(config, key):
                raise ConfigError(
                    f"model.config_overrides.{key} is not a field of {type(config).__name__}."
                )
            setattr(config, key, value)
        self.kind = text_kind(config, kind)
        decoder = self.kind == "decoder"
        model_class = _base_model_class(config)
        if attn_implementation == "sdpa" and not getattr(model_class, "_supports_sdpa", True):
            from ftlab.console import log

            log.info(f"{model_class.__name__} has no SDPA attention; using eager attention.")
            attn_implementation = "eager"
        config._attn_implementation = attn_implementation
        pooler_option = "add_pooling_layer" in inspect.signature(model_class.__init__).parameters
        # ftlab pools itself: an unused pooler would be trainable parameters without
        # gradients under full/last_n (an error under DDP)
        kwargs = {"add_pooling_layer": False} if pooler_option else {}
        if quantization is not None:
            kwargs.update(kwargs_quantized)
        self.quantization = quantization
        # a decoder asked for its LM head (a generative task) loads as a causal LM: the base
        # model stays at `model` (the same parameter names as without it), the head at
        # `lm_head` (tied to the input embeddings where the model ties them)
        with_head = lm_head and decoder
        auto = AutoModelForCausalLM if with_head else AutoModel
        if with_head:
            kwargs.pop("add_pooling_layer", None)
        if pretrained and not config_overrides:
            loaded = auto.from_pretrained(
                self.name, config=config, local_files_only=offline, **kwargs
            )
        elif pretrained:
            raise ConfigError(
                "model.config_overrides changes the architecture, so pretrained weights cannot "
                "load; set model.pretrained=false."
            )
        else:
            loaded = auto.from_config(config, **kwargs)
        if with_head:
            self.model = loaded.base_model
            self.lm_head = loaded.get_output_embeddings()
            # its forward adds what some families do after the head (Gemma's soft-capping,
            # Cohere's logit scale); held by reference: its parts are registered above
            object.__setattr__(self, "_lm", loaded)
            # transformers 5.25 renamed its forward's past_key_values to cache
            forward = inspect.signature(loaded.forward).parameters
            self._cache_keyword = "cache" if "cache" in forward else "past_key_values"
        else:
            self.model = loaded
        self.config = config
        self.pooling = _pooling(pooling, config, decoder)
        _set_padding(self.tokenizer, pad_token, padding_side, self.name)
        accepted = inspect.signature(self.model.forward).parameters
        # token type ids are segments to an encoder; GPT-2 would look them up as tokens
        wanted = (
            "input_ids",
            "attention_mask",
            *(() if decoder else ("token_type_ids",)),
        )
        self._inputs = [k for k in wanted if k in accepted]
        # decoders: positions count real tokens only, so left padding shifts nothing
        self._positions = decoder and "position_ids" in accepted
        # prompts go in as input embeddings; decoders also need ftlab's positions
        self._embeds_input = "inputs_embeds" in accepted and (self._positions or not decoder)
        if grad_checkpointing:
            self.set_grad_checkpointing(True)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        if enabled and not self.model.supports_gradient_checkpointing:
            raise ConfigError(
                f"{self.label} ({type(self.model).__name__}) cannot recompute activations in "
                "transformers; set model.grad_checkpointing=false (or lower data.batch_size "
                "or data.max_length to save memory)."
            )
        if enabled:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        else:
            self.model.gradient_checkpointing_disable()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.forward_tokens(batch)
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        if self.pooling == "last":  # the last real token, whichever side the padding is on
            positions = torch.arange(mask.shape[1], device=mask.device)
            last = (mask.long() * positions).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def forward_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in self._inputs if k in batch}
        slot = self.token_slot
        if slot is not None:  # inserted tokens (prompts) are always attended to
            mask = inputs.get("attention_mask")
            if mask is None:
                mask = torch.ones_like(inputs["input_ids"])
            inputs["attention_mask"] = slot.extend_mask(mask)
            if self._prompts_via_table:
                # the table's forward hook inserts the prompts; the model then takes a
                # sequence longer than the ids (positions come from the mask or its length)
                table = self.model.get_input_embeddings()
                inputs["inputs_embeds"] = table(inputs.pop("input_ids"))
                if "token_type_ids" in inputs:
                    inputs["token_type_ids"] = slot.extend_mask(inputs["token_type_ids"], 0)
        if self._positions and "attention_mask" in inputs:
            mask = inputs["attention_mask"].long()
            inputs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        try:
            hidden = self.model(**inputs).last_hidden_state
        except IndexError as err:  # a position embedding table too short for the sequence
            too_long = self._too_long(inputs)
            if too_long is None:
                raise
            raise too_long from err
        return hidden if slot is None else slot.remove(hidden)

    def _too_long(self, inputs: dict[str, torch.Tensor]) -> ConfigError | None:
        limit = getattr(self.config, "max_position_embeddings", None)
        length = inputs["attention_mask"].shape[1] if "attention_mask" in inputs else None
        if not limit or length is None or length < limit - 2:  # RoBERTa/OPT: offset of 2
            return None
        prompts = f", {self.token_slot.count} of them prompts," if self.token_slot else ""
        return ConfigError(
            f"{length} tokens{prompts} need more positions than {self.label} has "
            f"(max_position_embeddings={limit}); lower data.max_length"
            f"{' or method.num_tokens' if prompts else ''}."
        )

    def lm_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        cache: Any = None,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits ``[B, T, V]`` for ``input_ids`` ``[B, T]`` (``LM_HEAD``).

        A method's prompts (``token_slot``) go in on the first call only and are removed
        from the logits; with a ``cache`` (transformers' ``DynamicCache``), a later call
        takes only the new tokens and the whole mask so far, the prompts' keys and values
        being in the cache by then. Positions count real tokens (left padding shifts
        nothing) unless ``position_ids`` are given (packed sequences, no mask). Returns the
        logits and the mask it used (with the prompts' columns), which the caller extends
        by one column per generated token. ``logits_to_keep``: only the last positions'."""
        if Capability.LM_HEAD not in self.anatomy.capabilities:
            raise self._lacks(Capability.LM_HEAD)
        first = cache is None or cache.get_seq_length() == 0
        slot = self.token_slot if first else None
        if slot is not None:  # the prompt method's hooks insert its tokens
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            attention_mask = slot.extend_mask(attention_mask)
        # inserted once, the prompts are in the cache after that: no hook inserts them again
        with nullcontext() if first else prompts_in_cache():
            embeds = self.model.get_input_embeddings()(input_ids)
            if position_ids is None and attention_mask is not None and self._positions:
                counted = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
                position_ids = counted[:, -embeds.shape[1] :]
            out = self._lm(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=cache is not None,
                logits_to_keep=logits_to_keep,
                **{self._cache_keyword: cache},
            )
        logits = out.logits
        if slot is not None and not logits_to_keep:
            logits = slot.remove(logits)
        return logits, attention_mask

    def new_cache(self) -> Any:
        """An empty key/value cache for :meth:`lm_forward`."""
        from transformers import DynamicCache

        return DynamicCache(config=self.config)

    @property
    def stop_token_ids(self) -> list[int]:
        """Tokens that end a generation: the model's generation config's and the tokenizer's
        EOS (a chat model's end of turn among them)."""
        found = getattr(getattr(self, "_lm", None), "generation_config", None)
        ids = getattr(found, "eos_token_id", None)
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return sorted(set(ids))

    @property
    def _prompts_via_table(self) -> bool:
        """Prompts join at the input embedding table (not a BERT embeddings module)."""
        return self.anatomy.embeddings != "model.embeddings"

    def embed_token_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """What the module prompts join at makes of token ``ids`` ``[T]`` (BERT's embeddings:
        at positions 0..T-1, no dropout): ``[T, hidden]`` vectors to start prompts from."""
        embeddings = self.get_submodule(self.anatomy.embeddings)
        was_training = embeddings.training
        embeddings.eval()
        try:
            with torch.no_grad():
                device = self.model.get_input_embeddings().weight.device
                # .forward: not through hooks, such as a prompt method's own insertion
                out = embeddings.forward(ids.to(device).unsqueeze(0))
                return out[0].float()
        finally:
            embeddings.train(was_training)

    def extend_attention(self, name: str, kv: nn.Module) -> nn.Module:
        """Make the self-attention ``name`` (one of ``anatomy.attention_kv``) also attend to
        the keys and values ``kv()`` returns, each ``[T, kv_dims[i]]``, from every query and
        whatever the padding (prefix tuning). The module keeps its name and gains ``kv``
        as its ``prefix`` (:mod:`ftlab.backbones.hf_attention`)."""
        if name not in self.anatomy.attention_kv:
            raise BackboneError(f"{name!r} is not an extendable attention of {self.label}.")
        attention = self.get_submodule(name)
        add_prefix(attention, kv)
        return attention

    def preprocessing(self):
        return self.tokenizer

    def example_batch(self, batch_size: int = 2, seq_len: int = 16) -> dict[str, torch.Tensor]:
        ids = torch.randint(1000, min(self.config.vocab_size, 30000), (batch_size, seq_len))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def describe(self) -> Anatomy:
        """BERT-named encoders: the full BERT anatomy; any other model: the structure's."""
        kv_ok = self.config._attn_implementation in KV_EXTENSIBLE
        if hf_bert.matches(self.model, self.config):
            has_cls = self.tokenizer.cls_token_id is not None
            return hf_bert.bert_anatomy(
                self.model, self.config, has_cls, kv_ok and not self.config.is_decoder
            )
        anatomy = generic_anatomy(
            self.model,
            self.config,
            self.kind,
            prompts=self._embeds_input,
            leading_special=self.tokenizer.cls_token_id is not None,
            kv_ok=kv_ok,
        )
        if anatomy is not None and hasattr(self, "_lm"):
            anatomy = dataclasses.replace(anatomy, lm_head=True)
        if anatomy is None:
            raise BackboneError(
                f"{self.name!r} ({self.config.model_type}) has no stack of repeated blocks that "
                "ftlab could find; only model types with one can be fine-tuned here."
            )
        return anatomy


QUANTIZATIONS = ("4bit", "8bit")


def _quantization(kind: str, pretrained: bool, dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained`` arguments that load the weights quantized by bitsandbytes
    (QLoRA: NF4 with double quantization, computing in ``model.dtype`` or bfloat16)."""
    if kind not in QUANTIZATIONS:
        raise ConfigError(f"model.quantization={kind!r} is not one of {[*QUANTIZATIONS, None]}.")
    if not pretrained:
        raise ConfigError(
            f"model.quantization={kind} quantizes pretrained weights as they load; set "
            "model.pretrained=true (or model.quantization=null)."
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"model.quantization={kind} runs on bitsandbytes' CUDA kernels and this machine has "
            "no CUDA GPU; use model.dtype=bfloat16 (frozen weights in half the memory) instead."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"model.quantization={kind} needs bitsandbytes: pip install 'ftlab[qlora]'."
        ) from err
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if dtype == torch.float32 else dtype
    if kind == "8bit":
        quantized = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quantized = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    device = {"": torch.cuda.current_device()}
    return {"quantization_config": quantized, "dtype": compute, "device_map": device}


def _pooling(pooling: str, config: Any, decoder: bool) -> str:
    if pooling == "auto":
        return "last" if decoder else "mean"
    if pooling == "cls" and decoder:
        raise ConfigError(
            f"model.pooling=cls on a decoder ({config.model_type}): under causal attention the "
            "first token has seen only itself. Use pooling=last (or auto) or mean."
        )
    return pooling


def _set_padding(tokenizer: Any, pad_token: str | None, side: str | None, name: str) -> None:
    """A pad token for batching (``pad_token``, else the tokenizer's own, else EOS) and the
    side padding goes on."""
    if pad_token is not None:
        tokenizer.pad_token = pad_token
    elif tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                f"the tokenizer of {name!r} has neither a pad nor an EOS token; set "
                "model.pad_token to one of its tokens."
            )
        tokenizer.pad_token = tokenizer.eos_token
    if side is not None:
        tokenizer.padding_side = side


def _base_model_class(config: Any) -> type:
    """The class ``AutoModel`` builds for ``config`` (``BertModel``, ``RobertaModel``, ...)."""
    from transformers import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError as err:
        raise BackboneError(
            f"{type(config).__name__} ({config.model_type}) has no base model class in "
            "transformers' AutoModel mapping; ftlab builds backbones through AutoModel."
        ) from err


def _cached_model_ids() -> list[str]:
    """Hub model ids in the local Hugging Face cache: the names that work offline."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # no cache dir yet, or an unreadable one: nothing to suggest
        return []


#: the name this class had until it was known to build decoders too: configs and
#: checkpoints written before the rename name it as their ``_target_``
HFEncoderBackbone = HFBackbone
