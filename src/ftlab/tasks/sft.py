"""``task=sft``: supervised fine-tuning of a decoder on prompt/response pairs, judged by the
answer it generates.

The loss covers the response's tokens (``train_on_prompt=true``: every token), each
response ending in EOS so the model learns to stop; the prompt goes through the tokenizer's
chat template when it has one. Validation measures the loss and perplexity (the best
checkpoint has the lowest loss); the test also decodes greedily from every prompt
(batched, left-padded, with the key/value cache), reads the answer out of the generation
the way the dataset is scored (:mod:`ftlab.tasks.answers`) and writes every generation to
``generations.jsonl`` in the run dir. ``packing=true`` trains on rows of whole examples
without padding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torchmetrics import MeanMetric, MinMetric

from ftlab.atomic import atomic_write_text
from ftlab.backbones.anatomy import Capability
from ftlab.errors import ConfigError, MethodNotApplicable
from ftlab.tasks import answers
from ftlab.tasks.generate import decoded, greedy
from ftlab.tasks.lm import LMTask
from ftlab.tasks.lm_data import SFTPipeline

ANSWERS = ("auto", "none", *answers.KINDS)
GENERATIONS_FILE = "generations.jsonl"


class SFT(LMTask):
    name: ClassVar[str] = "sft"
    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"
    score: ClassVar[str] = "test/exact_match"
    min_classes: ClassVar[int] = 1

    def __init__(
        self,
        name: str = "sft",
        chat_template: bool | str = "auto",
        train_on_prompt: bool = False,
        max_length: int = 512,
        packing: bool = False,
        max_new_tokens: int = 64,
        answer: str = "auto",
        forgetting: str | None = "bbc_news",
        forgetting_texts: int = 32,
        forgetting_tokens: int = 256,
    ) -> None:
        super().__init__(
            name, chat_template, max_length, forgetting, forgetting_texts, forgetting_tokens
        )
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ConfigError(f"task.max_new_tokens={max_new_tokens!r} must be an integer.")
        if max_new_tokens < 1:
            raise ConfigError(
                f"task.max_new_tokens={max_new_tokens} generates nothing to score; set it to 1 "
                "or more (64 holds a short worked answer)."
            )
        if answer not in ANSWERS:
            raise ConfigError(f"task.answer={answer!r} is not one of {', '.join(ANSWERS)}.")
        self.train_on_prompt = bool(train_on_prompt)
        self.packing = bool(packing)
        self.max_new_tokens = max_new_tokens
        self.answer = answer
        self.answer_kind: str | None = None  # the data's, unless task.answer says

    # -- before anything trains --------------------------------------------------------------
    def check(self, backbone: Any, method: Any, datamodule: Any = None) -> None:
        super().check(backbone, method, datamodule)
        if self.packing and Capability.TOKEN_INPUT in method.needs(backbone.anatomy):
            raise MethodNotApplicable(
                f"method={method.name} puts virtual tokens before each example's text, and "
                "task.packing=true puts several examples in one row; set task.packing=false."
            )
        if datamodule is not None:
            self.answer_kind = self._answer_kind(datamodule)
            if self.answer_kind is None:  # nothing to check answers against: the test loss
                self.score = "test/loss"

    def _answer_kind(self, datamodule: Any) -> str | None:
        source = datamodule.source
        fields = tuple(getattr(source, "fields", ()))
        if fields and not ({"prompt", "response"} <= set(fields) or "messages" in fields):
            raise ConfigError(
                f"task=sft trains on prompt/response pairs (or chats), and data="
                f"{datamodule.name} yields {', '.join(fields)}; use data with prompts and "
                "responses (data.source.prompt_column/response_column for hf_dataset), or "
                "task=choice to score its options."
            )
        declared = getattr(source, "answer_kind", None) if fields else "text"
        if self.answer == "auto":
            return declared
        return None if self.answer == "none" else self.answer

    def pipeline(self, datamodule: Any) -> SFTPipeline:
        return SFTPipeline(
            datamodule, self.max_length, self.chat_template, self.train_on_prompt, self.packing
        )

    # -- on the module ---------------------------------------------------------------------
    def build(self, module: nn.Module) -> None:
        super().build(module)
        for split in ("val", "test"):
            setattr(module, f"{split}_loss", MeanMetric())
        module.test_exact = MeanMetric()
        module.test_answered = MeanMetric()
        module.val_best = MinMetric()
        self._generations: list[dict[str, Any]] = []

    def training_step(self, module: Any, batch: dict[str, Any]) -> torch.Tensor:
        loss, count = self.lm_loss(module, batch)
        return loss / count.clamp(min=1)

    def _eval_loss(self, module: Any, batch: dict[str, Any], split: str) -> None:
        loss, count = self.lm_loss(module, batch)
        if count > 0:
            getattr(module, f"{split}_loss").update(loss / count, weight=count)

    def validation_step(self, module: Any, batch: dict[str, Any]) -> None:
        self._eval_loss(module, batch, "val")

    def on_validation_epoch_end(self, module: Any) -> None:
        loss = module.val_loss.compute()
        module.val_loss.reset()
        module.log("val/loss", loss, prog_bar=True, sync_dist=False)
        module.log("val/ppl", torch.exp(loss), sync_dist=False)
        module.log_best(loss)

    def test_step(self, module: Any, batch: dict[str, Any]) -> None:
        self._eval_loss(module, batch, "test")
        backbone = module.backbone
        stop = backbone.stop_token_ids
        new = greedy(
            backbone,
            batch["gen_input_ids"],
            batch["gen_attention_mask"],
            self.max_new_tokens,
            stop,
            backbone.tokenizer.pad_token_id,
        )
        texts = decoded(backbone.tokenizer, new, stop)
        for prompt, text, gold in zip(batch["prompt_text"], texts, batch["answer"]):
            row: dict[str, Any] = {"prompt": prompt, "generated": text, "answer": gold}
            if self.answer_kind is not None:
                said = answers.extract(text, self.answer_kind)
                right = answers.correct(text, gold, self.answer_kind)
                module.test_exact.update(float(right))
                module.test_answered.update(float(said is not None))
                row.update(extracted=said, correct=right)
            self._generations.append(row)

    def on_test_epoch_end(self, module: Any) -> None:
        loss = module.test_loss.compute()
        module.test_loss.reset()
        module.log("test/loss", loss, sync_dist=False)
        module.log("test/ppl", torch.exp(loss), sync_dist=False)
        if self.answer_kind is not None:
            module.log("test/exact_match", module.test_exact.compute())
            module.log("test/answered", module.test_answered.compute())
            module.test_exact.reset()
            module.test_answered.reset()
        own = self.tested_on_own_data(module)
        if own:  # once per run, not again for also_test's data
            self.log_forgetting(module)
        self._write_generations(module, own)

    def _write_generations(self, module: Any, own: bool) -> None:
        """Every test generation, its extracted answer and the gold one, in the run dir
        (``generations-<data>.jsonl`` for also_test's data; rank 0 writes its own share,
        metrics are over all ranks)."""
        rows, self._generations = self._generations, []
        trainer = module.trainer
        if trainer.global_rank != 0 or not trainer.default_root_dir:
            return
        name = GENERATIONS_FILE if own else f"generations-{trainer.datamodule.name}.jsonl"
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        out_dir = Path(trainer.default_root_dir)
        out_dir.mkdir(parents=True, exist_ok=True)  # evaluate() tests before it writes there
        atomic_write_text(out_dir / name, text)
