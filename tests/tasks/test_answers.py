"""Reading answers out of generations (:mod:`ftlab.tasks.answers`): the last number, the
option letter, the first line as normalised text; and whether that is the gold answer."""

from __future__ import annotations

import pytest

from ftlab.tasks.answers import KINDS, correct, extract, gold, normalize


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 18.", "18"),
        ("She has 5 apples, then 7 more, so 12 apples", "12"),  # the last number
        ("#### 18", "18"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("1,000,000 grains", "1000000"),
        ("It costs $1,234.50 in total.", "1234.5"),
        ("$0.75", "0.75"),
        ("The temperature fell to -3 degrees", "-3"),
        ("3/4 of the cake", "0.75"),
        ("about 1/3", "0.333333333333333"),
        ("18.0", "18"),
        ("a half is .5", "0.5"),
        ("12345.67 dollars", "12345.67"),  # seven digits: not rounded to 12345.7
        ("no number here", None),
        ("", None),
        ("1/0", None),
    ],
)
def test_numbers(text, number):
    assert extract(text, "number") == number


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B. library", "B"),
        ("Answer: C", "C"),
        ("The answer is D.", "D"),
        ("E) sail boat", "E"),
        ("I think the answer is C.", "C"),  # "I" is a word here, not option I
        ("A good guess: B", "B"),  # and "A" an article
        ("A", "A"),
        ("A. bank", "A"),
        ("none of them", None),
        ("answer b", None),  # option letters are capitals
        ("", None),
    ],
)
def test_letters(text, letter):
    assert extract(text, "letter") == letter


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Yes.", "yes"),
        ("  \n No, it is not.\nYes", "no it is not"),  # the first line with words
        ("The Eiffel Tower!", "eiffel tower"),
        ("an apple", "apple"),
        ("...", None),
        ("", None),
    ],
)
def test_text(text, words):
    assert extract(text, "text") == words


def test_unknown_kind_is_refused():
    assert KINDS == ("number", "letter", "text")
    with pytest.raises(ValueError, match="answer kind 'digits' is not one of"):
        extract("1", "digits")


@pytest.mark.parametrize(
    ("generated", "answer", "kind", "right"),
    [
        ("So she has 9 apples.", "9", "number", True),
        ("#### 1,234", "1234", "number", True),
        ("It is 4.50 dollars", "4.5", "number", True),
        ("It is 4.5", "4.50 dollars", "number", True),  # the gold read the same way
        ("3/4", "0.75", "number", True),
        ("0.333333", "1/3", "number", True),  # within a millionth
        ("9 apples, no wait, 10", "9", "number", False),  # the last number counts
        ("12345.68", "12345.67", "number", False),
        ("1234567.4", "1234567.5", "number", False),
        ("I do not know", "9", "number", False),  # no answer
        ("", "9", "number", False),
        ("B. library", "B", "letter", True),
        ("B", "B. library", "letter", True),
        ("The answer is C", "B", "letter", False),
        ("no letter", "B", "letter", False),
        ("Yes, it is.", "yes", "text", False),  # the whole first line is compared
        ("Yes!", "yes", "text", True),
        ("The Yes", "yes", "text", True),
        ("", "yes", "text", False),
    ],
)
def test_correct(generated, answer, kind, right):
    assert correct(generated, answer, kind) is right


def test_gold_answers_are_read_like_generations():
    assert gold("  B. sail boat", "letter") == "B"
    assert gold("9 apples", "number") == "9"
    assert gold("The Yes", "text") == normalize("yes") == "yes"
    assert gold("", "letter") is None
