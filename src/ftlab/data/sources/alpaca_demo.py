"""Alpaca instruction-following demo data, read from the ``llamafactory`` sdist (a data
carrier, never installed; its wheel holds no data)."""

from __future__ import annotations

import json
from pathlib import Path

from ftlab.data.sources.base import (
    EXAMPLE_CLASS,
    PackagedSource,
    Record,
    Split,
    fixed_test_split,
    records,
)


class AlpacaDemo(PackagedSource):
    """LLaMA-Factory's Alpaca demo (``data/alpaca_en_demo.json`` of the ``llamafactory==0.9.5``
    sdist: 999 ``{instruction, input, output}`` records) for supervised fine-tuning.

    prompt = the instruction, plus "\\n\\n" and the input when there is one (412 of 999);
    response = the output; answer = the output too, which no extractor checks
    (``answer_kind = None``: free text). 14 records repeat another's instruction, input and
    output word for word and are dropped, so no test prompt is also a training prompt; the
    985 left split into a fixed 80% train / 20% test (788 / 197). Licence: CC BY-NC 4.0;
    the responses are model-generated.
    """

    name = "alpaca_demo"
    title = "Alpaca demo"
    modality = "text"
    splits = ("train", "test")
    classes = EXAMPLE_CLASS
    fields = ("prompt", "response", "answer")
    answer_kind = None
    default_fetch = True
    requirement = "llamafactory==0.9.5"
    member = "data/alpaca_en_demo.json"
    sdist = True

    def build(self, archive: Path) -> dict[str, Split]:
        with self.open_member(archive) as f:
            rows = json.load(f)
        items: dict[str, Record] = {}
        for row in rows:
            instruction, given = row["instruction"].strip(), row.get("input", "").strip()
            prompt = f"{instruction}\n\n{given}" if given else instruction
            output = row["output"].strip()
            items.setdefault(prompt, Record(prompt=prompt, response=output, answer=output))
        return fixed_test_split(records(list(items.values())))

    def _load(self) -> dict[str, Split | None]:
        return dict(self.build(self.located()))

    def contents(self, archive: Path) -> str:
        sizes = ", ".join(f"{split} {len(part):,}" for split, part in self.build(archive).items())
        return f"{self.member}: {sizes}"
