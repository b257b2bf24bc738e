"""Reading an answer out of what a model generated, the way each kind of dataset is scored.

- ``number`` (math word problems: ASDiv, GSM8K): the last number in the text (``1,234``,
  ``-3``, ``0.5``, ``3/4``), compared as a number;
- ``letter`` (multiple choice asked as a question: CommonsenseQA, PIQA): the letter after
  "answer" (``Answer: B``, ``the answer is B``), else the first option letter that stands
  alone (``B``, ``(B)``, ``B.``), not counting the words "A" and "I" (``A good guess``);
- ``text`` (label words, short answers: BoolQ's ``yes``/``no``): the first line, compared
  after SQuAD's normalisation (lower case, no punctuation, no articles, single spaces).
"""

from __future__ import annotations

import re
import string
from fractions import Fraction

KINDS = ("number", "letter", "text")

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_LETTER = re.compile(r"(?<![A-Za-z])([A-J])(?![A-Za-z])")
_ANSWER_LETTER = re.compile(r"(?i:answer)(?:\s+(?i:is))?\s*:?\s*\(?([A-J])(?![A-Za-z])")
_WORD_FOLLOWS = re.compile(r"\s+[a-z]")  # "A good", "I think": a word, not an option
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def extract(text: str, kind: str) -> str | None:
    """The answer ``text`` gives, in canonical form (digits, a letter, normalised words),
    or None when it gives none."""
    if kind == "number":
        found = _NUMBER.findall(text.replace("$", ""))
        return canonical_number(found[-1]) if found else None
    if kind == "letter":
        return _letter(text.strip())
    if kind == "text":
        first = next((line for line in text.splitlines() if line.strip()), "")
        return normalize(first) or None
    raise ValueError(f"answer kind {kind!r} is not one of {KINDS}")


def _letter(text: str) -> str | None:
    found = _ANSWER_LETTER.search(text)
    if found:
        return found.group(1)
    for found in _LETTER.finditer(text):
        if found.group(1) in "AI" and _WORD_FOLLOWS.match(text, found.end()):
            continue
        return found.group(1)
    return None


def canonical_number(token: str) -> str | None:
    """``"1,234.50"`` -> ``"1234.5"``, ``"3/4"`` -> ``"0.75"``, ``"18.0"`` -> ``"18"``."""
    token = token.replace(",", "").rstrip(".")
    try:
        value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), ".15g")  # as the sources write answers (number_answer)


def normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and articles out, one space."""
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def gold(answer: str, kind: str) -> str | None:
    """A dataset's gold answer in the same canonical form as :func:`extract`'s."""
    if kind == "text":
        return normalize(answer)
    if kind == "letter":
        return answer.strip()[:1].upper() or None
    return extract(answer, kind)


def correct(generated: str, answer: str, kind: str) -> bool:
    """Whether ``generated`` gives ``answer``: numbers by value, the rest as normalised text."""
    said, wanted = extract(generated, kind), gold(answer, kind)
    if said is None or wanted is None:
        return False
    if kind == "number":
        return abs(float(Fraction(said)) - float(Fraction(wanted))) < 1e-6
    return said == wanted
