"""``task=choice``: answer options scored through the model's own LM head, as Lester et al.
and lm-eval-harness do.

Each option is scored by the summed log-probability of its tokens following the prompt;
the best-scored one is the prediction (``acc``). Training is the LM loss on the gold
option's tokens: no parameter is added outside the method. Multiple-choice data brings its
options; a text classification dataset's class names are its label words (``label_words``
renames them, e.g. ``{rotten: bad, fresh: good}``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric

from ftlab.errors import ConfigError
from ftlab.plain import plain
from ftlab.tasks.lm import LMTask, token_loss
from ftlab.tasks.lm_data import IGNORE, ChoicePipeline


class Choice(LMTask):
    name: ClassVar[str] = "choice"

    def __init__(
        self,
        name: str = "choice",
        chat_template: bool | str = "auto",
        max_length: int = 256,
        label_words: dict[str, str] | None = None,
        forgetting: str | None = "bbc_news",
        forgetting_texts: int = 32,
        forgetting_tokens: int = 256,
    ) -> None:
        super().__init__(
            name, chat_template, max_length, forgetting, forgetting_texts, forgetting_tokens
        )
        self.label_words = dict(plain(label_words) or {})

    def check(self, backbone: Any, method: Any, datamodule: Any = None) -> None:
        super().check(backbone, method, datamodule)
        if datamodule is None:
            return
        fields = tuple(getattr(datamodule.source, "fields", ()))
        if fields and "options" not in fields:
            raise ConfigError(
                f"task=choice scores answer options, and data={datamodule.name} yields "
                f"{', '.join(fields)}, without options; use task=sft to generate its answers, "
                "or multiple-choice data (boolq, commonsense_qa, piqa, or hf_dataset with "
                "data.source.options_column)."
            )
        if self.label_words and fields:
            raise ConfigError(
                f"task.label_words renames a classification dataset's class names, and "
                f"data={datamodule.name} brings its own options; leave task.label_words=null."
            )
        names = datamodule.class_names
        unknown = sorted(set(self.label_words) - set(names))
        if unknown:
            raise ConfigError(
                f"task.label_words names {', '.join(map(repr, unknown))}, not a class of "
                f"data={datamodule.name} (classes: {', '.join(names)})."
            )

    def pipeline(self, datamodule: Any) -> ChoicePipeline:
        return ChoicePipeline(datamodule, self.max_length, self.chat_template, self.label_words)

    # -- on the module ---------------------------------------------------------------------
    def build(self, module: nn.Module) -> None:
        super().build(module)
        for split in ("val", "test"):
            setattr(module, f"{split}_loss", MeanMetric())
            setattr(module, f"{split}_acc", MeanMetric())
        module.val_best = MaxMetric()

    def _forward(self, module: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = module.backbone.lm_forward(
            batch["input_ids"], batch["attention_mask"], logits_to_keep=int(batch["keep"])
        )
        return logits, batch["labels"][:, -logits.shape[1] :]

    def training_step(self, module: Any, batch: dict[str, Any]) -> torch.Tensor:
        logits, labels = self._forward(module, batch)
        loss, count = token_loss(logits, labels)
        return loss / count.clamp(min=1)

    def _score(self, module: Any, batch: dict[str, Any], split: str) -> None:
        logits, labels = self._forward(module, batch)
        target = labels[:, 1:]
        picked = logits[:, :-1].float().log_softmax(-1)
        logp = picked.gather(-1, target.clamp(min=0)[..., None])[..., 0]
        score = (logp * (target != IGNORE)).sum(1)  # each option's summed log-probability
        example, gold = batch["example"], batch["gold"]
        right = []
        for e in range(len(gold)):
            scores = score[example == e]
            right.append(float(scores.argmax() == gold[e]))
            gold_row = torch.nonzero(example == e)[gold[e]]
            loss, count = token_loss(logits[gold_row], labels[gold_row])
            getattr(module, f"{split}_loss").update(loss / count.clamp(min=1), weight=count)
        getattr(module, f"{split}_acc").update(torch.tensor(right))

    def validation_step(self, module: Any, batch: dict[str, Any]) -> None:
        self._score(module, batch, "val")

    def on_validation_epoch_end(self, module: Any) -> None:
        acc, loss = module.val_acc.compute(), module.val_loss.compute()
        module.val_acc.reset()
        module.val_loss.reset()
        module.log("val/acc", acc, prog_bar=True)
        module.log("val/loss", loss)
        module.log_best(acc)

    def test_step(self, module: Any, batch: dict[str, Any]) -> None:
        self._score(module, batch, "test")

    def on_test_epoch_end(self, module: Any) -> None:
        module.log("test/acc", module.test_acc.compute())
        module.log("test/loss", module.test_loss.compute())
        module.test_acc.reset()
        module.test_loss.reset()
        if self.tested_on_own_data(module):  # once per run, not again for also_test's data
            self.log_forgetting(module)
