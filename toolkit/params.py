"""Typed parameters: validate a plain mapping (a recipe node) against a dataclass.

Every plugin and every stage declares a ``Params`` dataclass. :func:`parse_params` checks a
mapping against it (unknown keys, wrong types, missing required values) and returns an
instance, raising :class:`~toolkit.errors.RecipeError` that names the key path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

from toolkit.errors import RecipeError, listing, suggest

_RUNTIME = "toolkit_runtime"


def runtime(default: Any = dataclasses.MISSING) -> Any:
    """A field given by code at build time (e.g. the trunk a splitter wraps), never by a recipe."""
    if default is dataclasses.MISSING:
        return dataclasses.field(default=None, metadata={_RUNTIME: True})
    return dataclasses.field(default=default, metadata={_RUNTIME: True})


def is_runtime(field: dataclasses.Field) -> bool:
    return bool(field.metadata.get(_RUNTIME))


def recipe_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a Params dataclass that a recipe may set."""
    return [f for f in dataclasses.fields(cls) if not is_runtime(f)]


def parse_params(cls: type, values: Mapping[str, Any] | None, path: str = "params",
                 runtime_values: Mapping[str, Any] | None = None) -> Any:
    """Validate ``values`` against dataclass ``cls`` and build it.

    ``runtime_values`` are passed through unchecked into runtime fields (and any other field).
    """
    values = dict(values or {})
    runtime_values = dict(runtime_values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    settable = {f.name for f in recipe_fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in settable:
            why = "is set by the code, not the recipe" if key in fields else "unknown key"
            raise RecipeError(f"{path}.{key}", f"{why}; valid keys: {listing(settable)}"
                              f"{suggest(key, settable)}")
        kwargs[key] = coerce(value, hints[key], f"{path}.{key}")
    for key, value in runtime_values.items():
        if key not in fields:
            raise RecipeError(f"{path}.{key}", f"unknown key; valid keys: {listing(fields)}")
        kwargs[key] = value
    for name, f in fields.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and name not in kwargs:
            raise RecipeError(f"{path}.{name}", "missing required value"
                              f" ({type_name(hints[name])})")
    return cls(**kwargs)


def type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against type annotation ``tp``; convert lossless cases (int -> float)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path)
            except RecipeError as err:
                errors.append(err.detail)
        raise RecipeError(path, f"expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        choices = [str(a) for a in args]
        raise RecipeError(path, f"expected one of {', '.join(choices)}, got {value!r}"
                                f"{suggest(str(value), choices)}")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(path, f"expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],)
        if origin is tuple and args and len(args) != 1:
            if len(args) != len(value):
                raise RecipeError(path, f"expected {len(args)} items, got {len(value)}")
            return tuple(coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin or tp) is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise RecipeError(path, f"expected a mapping, got {value!r}")
        item = args[1] if args else Any
        return {str(k): coerce(v, item, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise RecipeError(path, f"expected a mapping, got {value!r}")
        return parse_params(tp, value, path)
    return _coerce_scalar(value, tp, path)


def _coerce_scalar(value: Any, tp: Any, path: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-3 as a string
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise RecipeError(path, f"expected {type_name(tp)}, got {value!r}")


def to_dict(params: Any) -> dict[str, Any]:
    """The recipe-settable part of a Params instance as plain data (for saving)."""
    out = {}
    for f in recipe_fields(type(params)):
        value = getattr(params, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
