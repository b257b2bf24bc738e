"""How the generative tasks read their data: records, chat formatting, tokenized examples.

A source's examples become *records* (``prompt``, ``response``, ``answer``, ``options``;
see :class:`ftlab.data.sources.base.Record`): a generative source yields them itself, and a
text classification source gives its texts as prompts and its class names as the answers
(label words). :class:`Formatter` turns a record into token ids, through the tokenizer's
chat template when it has one (``chat_template=auto``), with the prompt masked out of the
loss. The pipelines (:class:`SFTPipeline`, :class:`ChoicePipeline`) plug into the data
module like the classification ones do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ftlab.console import log
from ftlab.data.pipelines import positive_int
from ftlab.data.sources.base import Split
from ftlab.errors import ConfigError, DataError

IGNORE = -100  # a label the loss skips (prompt and padding tokens)
CHAT_TEMPLATES = ("auto", True, False)


def records(split: Split, fields: Sequence[str], class_names: Sequence[str]) -> list[dict]:
    """The split's examples as records: a generative source's own (``fields`` not empty),
    or a classification source's texts as prompts with its class names as label words."""
    if fields:
        return [dict(item) for item in split.items]
    out = []
    for item, label in zip(split.items, split.labels):
        text = "\n".join(item) if isinstance(item, tuple) else str(item)
        word = class_names[int(label)]
        out.append(
            {"prompt": f"{text}\nAnswer:", "options": list(class_names), "response": word,
             "answer": word}
        )  # fmt: skip
    return out


class Formatter:
    """Token ids of a record's prompt, response and options, through the tokenizer's chat
    template (``chat_template``: ``auto`` = when it has one) or as plain continuation."""

    def __init__(self, tokenizer: Any, chat_template: bool | str = "auto") -> None:
        has = bool(getattr(tokenizer, "chat_template", None))
        if chat_template is True and not has:
            name = getattr(tokenizer, "name_or_path", "this model")
            raise ConfigError(
                f"task.chat_template=true but the tokenizer of {name} has no chat template; "
                "set task.chat_template=auto (use one when there is one) or false."
            )
        self.tokenizer = tokenizer
        self.chat = has if chat_template == "auto" else bool(chat_template)
        self.eos = tokenizer.eos_token_id

    def _chat(self, messages: list[dict], **kwargs: Any) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    def _messages(self, record: dict) -> list[dict]:
        messages = record.get("messages")
        if messages:  # a chat: the last assistant turn is the response
            turns = [dict(m) for m in messages]
            return turns[:-1] if turns[-1].get("role") == "assistant" else turns
        return [{"role": "user", "content": record["prompt"]}]

    def response_text(self, record: dict) -> str:
        messages = record.get("messages")
        if messages and messages[-1].get("role") == "assistant":
            return str(messages[-1]["content"])
        return str(record["response"])

    def prompt_ids(self, record: dict) -> list[int]:
        if self.chat:
            return self._chat(self._messages(record), add_generation_prompt=True)
        return list(self.tokenizer(record["prompt"])["input_ids"])

    def continuation_ids(self, record: dict, text: str, prompt: list[int]) -> list[int]:
        """``text`` as the tokens that follow ``prompt`` (an assistant turn's content)."""
        if self.chat:
            turn = [*self._messages(record), {"role": "assistant", "content": text}]
            full = self._chat(turn)
            if full[: len(prompt)] == prompt:
                return full[len(prompt) :]
        return list(self.tokenizer(" " + text, add_special_tokens=False)["input_ids"])

    def response_ids(self, record: dict, prompt: list[int]) -> list[int]:
        """The response's tokens, ending with EOS (the template's end of turn, else appended),
        so the model learns to stop."""
        ids = self.continuation_ids(record, self.response_text(record), prompt)
        if self.eos in ids:
            return ids[: ids.index(self.eos) + 1]
        return [*ids, self.eos]

    def option_ids(self, record: dict, option: str, prompt: list[int]) -> list[int]:
        """An answer option's tokens as they follow the prompt, without an end of turn."""
        ids = self.continuation_ids(record, option, prompt)
        return ids[: ids.index(self.eos)] if self.eos in ids else ids


class SFTExamples(Dataset):
    """Prompt + response token ids, the prompt masked out of the labels (unless
    ``train_on_prompt``), cut at ``max_length``; the prompt alone (its end kept) for
    generation, with the gold answer."""

    def __init__(
        self, rows: list[dict], fmt: Formatter, max_length: int, train_on_prompt: bool
    ) -> None:
        self.items = []
        self.truncated = self.emptied = 0
        for i, record in enumerate(rows):
            prompt = fmt.prompt_ids(record)
            response = fmt.response_ids(record, prompt)
            ids = (prompt + response)[:max_length]
            labels = ([IGNORE] * len(prompt) + response)[:max_length]
            if train_on_prompt:
                labels = list(ids)
            self.truncated += len(prompt) + len(response) > max_length
            self.emptied += all(label == IGNORE for label in labels[1:])
            self.items.append(
                {
                    "input_ids": torch.tensor(ids),
                    "labels": torch.tensor(labels),
                    "prompt_ids": torch.tensor(prompt[-max_length:]),
                    "answer": str(record.get("answer", "")),
                    "prompt_text": record.get("prompt") or str(record.get("messages", "")),
                    "index": i,
                }
            )
        if self.items and self.emptied == len(self.items):
            raise DataError(
                f"every response is cut away at task.max_length={max_length} (prompts are "
                "longer); raise task.max_length or shorten the prompts."
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class PackedExamples(Dataset):
    """:class:`SFTExamples` packed into rows of at most ``max_length`` tokens without
    padding: each row holds whole examples, its ``position_ids`` restart at every example
    (transformers then keeps their attention apart), and no example's first token is a
    target (it would be predicted from the previous example)."""

    def __init__(self, examples: SFTExamples, max_length: int) -> None:
        self.rows: list[list[dict]] = [[]]
        used = 0
        for item in examples.items:
            n = len(item["input_ids"])
            if used + n > max_length and self.rows[-1]:
                self.rows.append([])
                used = 0
            self.rows[-1].append(item)
            used += n
        self.examples = sum(len(row) for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        labels = [item["labels"].clone() for item in row]
        for part in labels:
            part[0] = IGNORE
        return {
            "input_ids": torch.cat([item["input_ids"] for item in row]),
            "labels": torch.cat(labels),
            "position_ids": torch.cat([torch.arange(len(item["input_ids"])) for item in row]),
        }


class SFTCollate:
    """Right-padded ``input_ids``/``attention_mask``/``labels`` (or packed rows with
    ``position_ids`` and no mask), plus, for scoring, the prompts left-padded for batched
    generation (``gen_input_ids``/``gen_attention_mask``) and their gold answers."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if "position_ids" in items[0]:  # packed rows: no mask, positions restart
            return {
                "input_ids": _pad([i["input_ids"] for i in items], self.pad_id),
                "labels": _pad([i["labels"] for i in items], IGNORE),
                "position_ids": _pad([i["position_ids"] for i in items], 0),
            }
        ids = [i["input_ids"] for i in items]
        batch = {
            "input_ids": _pad(ids, self.pad_id),
            "attention_mask": _pad([torch.ones_like(x) for x in ids], 0),
            "labels": _pad([i["labels"] for i in items], IGNORE),
        }
        prompts = [i["prompt_ids"] for i in items]
        batch["gen_input_ids"] = _pad(prompts, self.pad_id, left=True)
        batch["gen_attention_mask"] = _pad([torch.ones_like(x) for x in prompts], 0, left=True)
        batch["answer"] = [i["answer"] for i in items]
        batch["prompt_text"] = [i["prompt_text"] for i in items]
        return batch


def _pad(rows: list[torch.Tensor], value: int, left: bool = False) -> torch.Tensor:
    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, row in enumerate(rows):
        if left:
            out[i, length - len(row) :] = row
        else:
            out[i, : len(row)] = row
    return out


class ChoiceExamples(Dataset):
    """Each record's prompt followed by each answer option (training: the gold one only),
    labels on the option's tokens: summed, their log-probabilities score the option."""

    def __init__(self, rows: list[dict], fmt: Formatter, max_length: int, gold_only: bool):
        self.items = []
        for i, record in enumerate(rows):
            options = [str(o) for o in record.get("options") or []]
            label = record.get("label")
            if not options:
                raise DataError(f"record {i} has no options to score (task=choice).")
            if not isinstance(label, int) or not 0 <= label < len(options):
                raise DataError(
                    f"record {i}: its label {label!r} is not among its {len(options)} options "
                    f"({', '.join(repr(o) for o in options[:5])})."
                )
            prompt = fmt.prompt_ids(record)
            sequences = []
            for k, option in enumerate(options):
                if gold_only and k != label:
                    continue
                answer = fmt.option_ids(record, option, prompt)
                keep = max(1, max_length - len(answer))  # cut the prompt's start, not the option
                ids = prompt[-keep:] + answer
                sequences.append((torch.tensor(ids), len(answer)))
            self.items.append({"sequences": sequences, "label": 0 if gold_only else label})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class ChoiceCollate:
    """Every (example, option) sequence left-padded in one batch, so each option's tokens
    are its last ones (only those positions' logits are computed): ``labels`` are the
    option's tokens, ``example`` maps a sequence to its example, ``gold`` is each example's
    gold option (among its own), ``keep`` how many final positions hold every option."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids, labels, example = [], [], []
        for e, item in enumerate(items):
            for seq, answer_len in item["sequences"]:
                ids.append(seq)
                tail = seq.clone()
                tail[: len(seq) - answer_len] = IGNORE
                labels.append(tail)
                example.append(e)
        longest = max(answer_len for item in items for _, answer_len in item["sequences"])
        return {
            "input_ids": _pad(ids, self.pad_id, left=True),
            "attention_mask": _pad([torch.ones_like(x) for x in ids], 0, left=True),
            "labels": _pad(labels, IGNORE, left=True),
            "example": torch.tensor(example),
            "gold": torch.tensor([item["label"] for item in items]),
            "keep": torch.tensor(longest + 1),
        }


class LMPipeline:
    """What the generative tasks' pipelines share: a tokenizer, a formatter, the records."""

    modality = "text"
    backbone = "a text"
    models = "a decoder language model (smollm2, hf)"

    def __init__(
        self,
        datamodule: Any,
        max_length: int,
        chat_template: bool | str,
        label_words: dict[str, str] | None = None,
    ) -> None:
        self.label_words = dict(label_words or {})
        self.max_length = positive_int("task.max_length", max_length, allow_none=False)
        if chat_template not in CHAT_TEMPLATES:
            raise ConfigError(
                f"task.chat_template={chat_template!r} is not one of auto, true, false."
            )
        self.chat_template = chat_template
        self.fields = tuple(getattr(datamodule.source, "fields", ()))
        self.datamodule = datamodule
        self.formatter: Formatter | None = None
        self.collate_fn: Any = None

    @staticmethod
    def accepts(pre: Any) -> bool:
        return callable(pre) and hasattr(pre, "pad_token_id")

    def configure(self, tokenizer: Any, model_name: str | None = None) -> None:
        self.formatter = Formatter(tokenizer, self.chat_template)

    def rows(self, split: Split) -> list[dict]:
        words = [self.label_words.get(n, n) for n in self.datamodule.class_names]
        rows = records(split, self.fields, words)
        for row, label in zip(rows, split.labels):
            row.setdefault("label", int(label))
        return rows

    def random_transform(self, train: bool) -> bool:
        return False


class SFTPipeline(LMPipeline):
    def __init__(
        self,
        datamodule: Any,
        max_length: int,
        chat_template: bool | str,
        train_on_prompt: bool,
        packing: bool,
    ) -> None:
        super().__init__(datamodule, max_length, chat_template)
        self.train_on_prompt, self.packing = bool(train_on_prompt), bool(packing)
        self.counts: dict[str, dict[str, int]] = {}

    def configure(self, tokenizer: Any, model_name: str | None = None) -> None:
        super().configure(tokenizer, model_name)
        self.collate_fn = SFTCollate(tokenizer.pad_token_id)

    def dataset(self, split: Split, train: bool) -> Dataset:
        assert self.formatter is not None, "configure() first"
        examples = SFTExamples(
            self.rows(split), self.formatter, self.max_length, self.train_on_prompt
        )
        part = "train" if train else "eval"
        seen = self.counts.setdefault(part, {"examples": 0, "truncated": 0, "response_cut_away": 0})
        seen["examples"] += len(examples)
        seen["truncated"] += examples.truncated
        seen["response_cut_away"] += examples.emptied
        if examples.truncated:
            log.info(
                f"{examples.truncated} of {len(examples)} {'training' if train else 'evaluation'} "
                f"examples are longer than task.max_length={self.max_length} and were cut "
                f"({examples.emptied} lost their whole response)."
            )
        return PackedExamples(examples, self.max_length) if train and self.packing else examples

    def truncation(self) -> dict[str, int]:
        """What :meth:`dataset` cut at ``max_length``, per part (train, eval), for the run's
        record."""
        return {
            f"data/{key}/{part}": value
            for part, seen in self.counts.items()
            for key, value in seen.items()
            if key != "examples"
        }


class ChoicePipeline(LMPipeline):
    def configure(self, tokenizer: Any, model_name: str | None = None) -> None:
        super().configure(tokenizer, model_name)
        self.collate_fn = ChoiceCollate(tokenizer.pad_token_id)

    def dataset(self, split: Split, train: bool) -> Dataset:
        assert self.formatter is not None, "configure() first"
        return ChoiceExamples(self.rows(split), self.formatter, self.max_length, gold_only=train)
