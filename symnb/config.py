"""The base of every settings dataclass: field types checked from the annotations, values
normalised (YAML lists -> tuples, ints -> floats), and a ``validate`` hook for ranges and choices.

Every config (``ModelConfig``, ``RenderSettings``, ``LossWeights``, ``DataConfig``, ``TrainConfig``,
``EvalConfig``, ...) derives from :class:`Config`; a bad value raises ``ValueError`` naming the
field, the value and what is allowed, e.g. ``ModelConfig.symmetry must be one of ('none', ...), got 'x'``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


#: types taken as they are, with the words of their error message
_PLAIN = {bool: "true or false", str: "a string"}


#: a number in exponent notation without a decimal point ("1e-4"), which PyYAML reads as a string
#: (ASCII digits only: ``\d`` would also take other scripts' digits, which YAML does not)
_EXPONENT_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


def _coerce(value: Any, tp, where: str) -> Any:
    """``value`` converted to the annotated type ``tp``, or ValueError naming ``where``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, a, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{where} must be {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, str) and args and args[0] is str and origin is tuple:
            value = (value,)  # a single name where a list of names is expected: `classes: car`
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp in _PLAIN:
        if not isinstance(value, tp):
            raise ValueError(f"{where} must be {_PLAIN[tp]}, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)  # "3e-4": a float in YAML 1.2, a string to PyYAML's YAML 1.1
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return float(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return from_dict(tp, value, where)
        raise ValueError(f"{where} must be a mapping of {tp.__name__} fields, got {value!r}")
    return value


class Config:
    """Mixin for settings dataclasses: ``__post_init__`` checks every field against its annotation,
    then calls :meth:`validate` (ranges and choices of the subclass)."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            if f.name in hints:
                where = f"{type(self).__name__}.{f.name}"
                object.__setattr__(self, f.name, _coerce(getattr(self, f.name), hints[f.name], where))
        self.validate()

    def validate(self) -> None:
        """Ranges and choices; subclasses raise ValueError through :meth:`_choice` / :meth:`_range`."""

    def _choice(self, name: str, choices) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(f"{type(self).__name__}.{name} must be one of {tuple(choices)}, got {value!r}")

    def _range(self, name: str, lo=None, hi=None, lo_open: bool = False) -> None:
        value = getattr(self, name)
        if value is None:
            return
        bad = (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi)
        if bad:
            lo_s = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
            hi_s = "" if hi is None else f"<= {hi}"
            rng = " and ".join(s for s in (lo_s, hi_s) if s)
            raise ValueError(f"{type(self).__name__}.{name} must be {rng}, got {value!r}")

    def to_dict(self) -> dict:
        """Plain nested dict (lists for tuples): YAML / JSON / checkpoint friendly."""
        return _plain(dataclasses.asdict(self))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def from_dict(cls, d: dict | None, where: str | None = None):
    """Build config dataclass ``cls`` from a (parsed YAML) dict; unknown keys raise ValueError."""
    where = where or cls.__name__
    d = d or {}
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a mapping, got {d!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; known: {sorted(names)}")
    return cls(**d)


def merge(base: dict, over: dict | None) -> dict:
    """Deep merge of nested dicts (``over`` wins); the one config merger of the project."""
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(items: list[str] | None) -> dict:
    """``["train.steps=100", "model.symmetry=reflection"]`` -> nested dict (values parsed as YAML,
    with :func:`symnb.utils.parse_yaml`: bounded, no aliases; a bad value is a ValueError naming it)."""
    from .utils import parse_yaml

    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.key=value")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = parse_yaml(value, f"override {item!r}") if value else None
    return out
