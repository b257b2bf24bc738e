"""What the two generative tasks share: the model's own LM head, a token-level loss, and
forgetting (how much worse the model predicts general text after fine-tuning).

Forgetting follows peft's method comparison: the cross-entropy of the untouched model on a
fixed slice of general text (held-out BBC News articles), against the fine-tuned model's on
the same slice. The first is measured before anything is applied or trained; the second
when the run is tested.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ftlab.backbones.anatomy import Capability
from ftlab.data.pipelines import positive_int
from ftlab.errors import ConfigError
from ftlab.tasks.base import Task
from ftlab.tasks.lm_data import IGNORE

#: the general text forgetting is measured on (a data source with a test split of texts)
GENERAL_TEXT = ("bbc_news",)


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token cross-entropy over the labelled positions, and their count:
    position ``t`` predicts label ``t + 1``; ``logits`` may cover the last positions only."""
    labels = labels[:, -logits.shape[1] :]
    target = labels[:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss, (target != IGNORE).sum()


class LMTask(Task):
    """A task predicting with the backbone's own LM head (a decoder loaded with it)."""

    lm_head: ClassVar[bool] = True
    new_head: ClassVar[bool] = False
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.LM_HEAD})

    def __init__(
        self,
        name: str,
        chat_template: bool | str = "auto",
        max_length: int = 512,
        forgetting: str | None = "bbc_news",
        forgetting_texts: int = 32,
        forgetting_tokens: int = 256,
    ) -> None:
        self.name = name
        self.chat_template = chat_template
        self.max_length = positive_int("task.max_length", max_length, allow_none=False)
        if forgetting is not None and forgetting not in GENERAL_TEXT:
            raise ConfigError(
                f"task.forgetting={forgetting!r} is not general text ftlab knows; use one of "
                f"{list(GENERAL_TEXT)}, or null to skip measuring forgetting."
            )
        self.forgetting = forgetting
        self.forgetting_texts = positive_int("task.forgetting_texts", forgetting_texts)
        self.forgetting_tokens = positive_int("task.forgetting_tokens", forgetting_tokens)
        self.before: float | None = None
        self.data_name: str | None = None  # the data it trains on (check() learns it)

    def refusal(self, backbone: Any, missing: set[Capability]) -> Exception:
        kind = getattr(backbone, "kind", backbone.anatomy.family)
        what = (
            "an encoder, with no causal LM head"
            if kind == "encoder"
            else f"a {backbone.anatomy.family} backbone, with no LM head"
        )
        return ConfigError(
            f"task={self.name} trains and scores through a decoder's own LM head, and "
            f"{backbone.label} is {what}; use a decoder: model=smollm2, or model=hf "
            "model.name=<a GPT-2, Llama, Qwen, Gemma, Mistral or Phi model>."
        )

    def check(self, backbone: Any, method: Any, datamodule: Any = None) -> None:
        super().check(backbone, method, datamodule)
        if datamodule is not None:
            self.data_name = datamodule.name

    def build(self, module: nn.Module) -> None:
        module.head = nn.Identity()  # the LM head is the backbone's; methods train nothing here

    def lm_loss(self, module: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = module.backbone.lm_forward(
            batch["input_ids"],
            batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
        )
        return token_loss(logits, batch["labels"])

    def settings(self) -> dict[str, Any]:
        hidden = ("before", "data_name")
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in hidden}

    # -- forgetting ---------------------------------------------------------------------------
    def measure_before(self, module: Any, device: torch.device) -> dict[str, Any]:
        """The untouched model's cross-entropy on the general text (before any method is
        applied or anything trains), measured on ``device``."""
        if self.forgetting is None:
            return {}
        backbone = module.backbone
        home = next(backbone.parameters()).device
        backbone.to(device)
        try:
            self.before = self.general_ce(backbone)
        finally:
            backbone.to(home)
        return {"forgetting/ce_before": self.before}

    @torch.no_grad()
    def general_ce(self, backbone: Any, batch_size: int = 8) -> float:
        """Mean next-token cross-entropy on the first ``forgetting_texts`` held-out articles,
        each cut at ``forgetting_tokens`` tokens."""
        from ftlab.data.sources import BBCNews

        texts = list(BBCNews().load("test").items)[: self.forgetting_texts]
        tokenizer = backbone.tokenizer
        device = next(backbone.parameters()).device
        was_training = backbone.training
        backbone.eval()
        total, count = torch.zeros((), device=device), torch.zeros((), device=device)
        try:
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[start : start + batch_size],
                    truncation=True,
                    max_length=self.forgetting_tokens,
                    padding=True,
                    return_tensors="pt",
                )
                ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
                labels = ids.masked_fill(mask == 0, IGNORE)
                logits, _ = backbone.lm_forward(ids, mask)
                loss, n = token_loss(logits, labels)
                total, count = total + loss, count + n
        finally:
            backbone.train(was_training)
        return float(total / count.clamp(min=1))

    def tested_on_own_data(self, module: Any) -> bool:
        """Whether the test that just ran was on the data the run trained on (not on one of
        ``also_test``'s)."""
        datamodule = getattr(module.trainer, "datamodule", None)
        return datamodule is None or datamodule.name == self.data_name

    def log_forgetting(self, module: Any) -> None:
        if self.forgetting is None:
            return
        after = self.general_ce(module.backbone)
        module.log("test/general_ce", after, sync_dist=False, rank_zero_only=True)
        if self.before is not None:
            module.log("test/forgetting", after - self.before, rank_zero_only=True)
