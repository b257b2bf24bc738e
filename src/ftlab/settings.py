"""Settings checked where they are declared, before anything is built.

- :func:`check_types`: a constructor's keyword arguments are its settings (``method.*``,
  ``module.*``, ``data.*``); each value is checked against its annotation once, before the
  range checks that follow, so ``method.lr=abc`` is a sentence naming the key, the value and
  the expected type instead of Python's ``'<=' not supported between ...``.
- :func:`check_trainer`: what Lightning's ``Trainer`` would take and then misuse, refused
  before a run starts: a key it has no argument for, a run that trains nothing (and would
  still write a results.json that reads like a result) or never ends, and a GPU this
  machine lacks.

The type rule errs towards accepting: what the checker cannot judge (a class such as
``Source``, ``Callable``, ``Any``, a name it cannot resolve) is never refused.
"""

from __future__ import annotations

import collections.abc
import inspect
import numbers
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ftlab.errors import ConfigError, suggest

_SCALARS = {
    bool: "true or false (bool)",
    int: "an integer (int)",
    float: "a number (float)",
    str: "a string (str)",
}
_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
_MAPPINGS = (dict, Mapping, collections.abc.MutableMapping)
_SEQUENCES = (list, tuple, Sequence, collections.abc.MutableSequence)

if TYPE_CHECKING:
    from omegaconf import DictConfig


def check_types(owner: Callable | type, values: Mapping[str, Any], prefix: str) -> None:
    """Raise :class:`ConfigError` for the first value in ``values`` that its parameter's
    annotation rules out. ``owner`` is a function, or a class whose ``__init__``\\ s along
    the MRO declare the parameters (the most derived declaration wins). Names that no
    signature declares are left to the constructor (unknown keys have their own message)."""
    for name, (hint, default) in declared(owner).items():
        if name not in values:
            continue
        value = values[name]
        if value is None and default is None:  # `x: int = None` means "or null"
            continue
        if accepts(hint, value) is False:
            raise ConfigError(
                f"{prefix}{name}={_shown(value)!r} must be {describe(hint)}; got {_kind(value)}."
            )


def declared(owner: Callable | type) -> dict[str, tuple[Any, Any]]:
    """``name -> (annotation, default)`` of every named parameter ``owner`` declares."""
    functions = (
        [k.__dict__["__init__"] for k in owner.__mro__ if "__init__" in k.__dict__]
        if isinstance(owner, type)
        else [owner]
    )
    out: dict[str, tuple[Any, Any]] = {}
    for function in functions:
        function = inspect.unwrap(function)
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # a builtin's __init__ (object's)
            continue
        for p in parameters:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in out:
                continue
            default = None if p.default is p.empty else p.default
            out[p.name] = (_evaluated(p.annotation, function), default)
    return out


def _evaluated(annotation: Any, function: Callable) -> Any:
    """An annotation as an object: modules with ``from __future__ import annotations`` keep
    them as strings, evaluated (as ``typing.get_type_hints`` does) in the function's module;
    one that does not evaluate (a name only a type checker sees) is judged as ``Any``."""
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, getattr(function, "__globals__", {}))
    except Exception:
        return Any


def accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``hint``: True, False, or None when the checker cannot judge.

    What Hydra passes is taken as the code would take it: an int where a float is declared,
    a ``DictConfig``/``ListConfig`` for a mapping/sequence; a bool is not an int."""
    if hint is Any or hint is object:
        return None
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        verdicts = [accepts(a, value) for a in args]
        if True in verdicts:
            return True
        return None if None in verdicts else False
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # numbers.Integral: numpy's integers too
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in _MAPPINGS:
        if not isinstance(value, Mapping):
            return False
        return _all(zip(args, (value.keys(), value.values()), strict=False))
    if container in _SEQUENCES:
        if isinstance(value, str | bytes):
            return False if container in (list, tuple) else None
        if not isinstance(value, Sequence):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and _all((a, [v]) for a, v in zip(args, value))
        return _all([(args[0], value)] if args else [])
    return None  # a class, Callable, a TypeVar, ...: not ours to judge


def _all(pairs) -> bool:
    """Every element fits its declared type (unjudged elements count as fitting)."""
    try:
        return all(accepts(hint, v) is not False for hint, items in pairs for v in items)
    except Exception:  # an element that does not resolve (a missing interpolation)
        return True


def describe(hint: Any) -> str:
    """What ``hint`` asks for, in words: ``a number (float) or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return "null"
    if hint in _SCALARS:
        return _SCALARS[hint]
    if origin is Literal:
        return "one of " + ", ".join(dict.fromkeys(map(_yaml, args)))
    if origin is typing.Union or origin is types.UnionType:
        literals = [v for a in args if typing.get_origin(a) is Literal for v in typing.get_args(a)]
        others = [a for a in args if typing.get_origin(a) is not Literal]
        parts = [describe(a) for a in others if a is not type(None)]
        if literals:  # Lightning's precision: a union of Literals, one list to a reader
            parts.insert(0, "one of " + ", ".join(dict.fromkeys(map(_yaml, literals))))
        if type(None) in args:
            parts.append("null")
        return ", ".join(parts[:-1]) + f" or {parts[-1]}" if len(parts) > 1 else parts[0]
    name = _name(hint)
    if (origin or hint) in _MAPPINGS:
        return f"a mapping ({name})"
    if (origin or hint) in _SEQUENCES:
        plural = _PLURALS.get(args[0]) if len(args) == 1 else None
        return f"a list of {plural} ({name})" if plural else f"a list ({name})"
    return name


def _name(hint: Any) -> str:
    if typing.get_args(hint):
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    for kind, words in ((bool, "a bool"), (numbers.Integral, "an integer"), (float, "a float")):
        if isinstance(value, kind):
            return words
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return f"a {type(value).__name__}"


def _shown(value: Any) -> Any:
    """An OmegaConf container as the plain dict/list it stands for, for the message."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=False)
    return value


# -- the trainer ------------------------------------------------------------------------------
_NOTHING = (
    "trains nothing, yet the run would test the untrained head and write a results.json "
    "that reads like a result"
)
_LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches")


def check_trainer(trainer: DictConfig, choice: str | None = None) -> None:
    """Refuse, with one sentence and before anything is built or written, a trainer config
    that Lightning would take and then misuse. ``choice`` is the ``trainer=`` option (named
    in the GPU message); the running Hydra app's when not given."""
    from hydra.utils import get_class

    from ftlab.hardware import check_accelerator

    target = get_class(trainer._target_)
    arguments = declared(target)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())
    values = {}
    for key in trainer:
        if str(key).startswith("_"):
            continue
        if key not in arguments and not open_ended:
            raise ConfigError(
                f"trainer.{key} is not an argument of {trainer._target_}.{suggest(key, arguments)}"
            )
        try:
            values[key] = trainer[key]
        except Exception:  # resolves only inside a running sweep (${hydra:job.num})
            continue
    check_types(target, values, "trainer.")
    _check_length(values)
    check_accelerator(values.get("accelerator", "auto"), choice or hydra_choice("trainer"))


def _check_length(trainer: Mapping[str, Any]) -> None:
    """A run that trains nothing or never ends; batch limits Lightning would refuse.
    (Values of other types are a custom trainer's own business.)"""
    numbers_only = {k: v for k, v in trainer.items() if isinstance(v, numbers.Real)}
    for key in _LIMITS:
        value = numbers_only.get(key)
        if value is not None and (value < 0 or (value > 1 and value % 1)):
            raise ConfigError(
                f"trainer.{key}={value} must be a number of batches >= 0 or a fraction in "
                "[0, 1] (null: all of them)."
            )
    if numbers_only.get("fast_dev_run", 0) < 0:
        raise ConfigError(
            f"trainer.fast_dev_run={trainer['fast_dev_run']} must be true, false or a number "
            "of batches >= 1."
        )
    if trainer.get("fast_dev_run"):  # Lightning sets the length: N batches of everything
        return
    epochs, steps = numbers_only.get("max_epochs"), numbers_only.get("max_steps", -1)
    if numbers_only.get("limit_train_batches") == 0:
        raise ConfigError(
            f"trainer.limit_train_batches={trainer['limit_train_batches']} {_NOTHING}; set a "
            "number of batches >= 1, a fraction in (0, 1], or null for all of them."
        )
    if epochs == 0:
        raise ConfigError(
            f"trainer.max_epochs=0 {_NOTHING}; set trainer.max_epochs>=1 (or -1 with a "
            "trainer.max_steps budget), or score a checkpoint with ftlab-eval ckpt_path=<file>."
        )
    if steps == 0:
        raise ConfigError(
            f"trainer.max_steps=0 {_NOTHING}; set trainer.max_steps>=1, or -1 to train for "
            "trainer.max_epochs."
        )
    if epochs is not None and epochs < -1:
        raise ConfigError(
            f"trainer.max_epochs={epochs} must be >= 1, or -1 to train by trainer.max_steps."
        )
    if steps < -1:
        raise ConfigError(
            f"trainer.max_steps={steps} must be >= 1, or -1 to train for trainer.max_epochs."
        )
    if epochs == -1 and steps == -1:
        raise ConfigError(
            "trainer.max_epochs=-1 with trainer.max_steps=-1 trains without end, and the "
            "learning-rate schedule needs a length; set trainer.max_epochs>=1 or "
            "trainer.max_steps>=1."
        )


def hydra_choice(group: str) -> str | None:
    """The option chosen for a config group in the running Hydra app (None outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().runtime.choices.get(group)
    except (ImportError, ValueError, AttributeError):
        return None
