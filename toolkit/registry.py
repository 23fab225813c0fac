"""The plugin registry: components found through entry points, one group per kind.

A plugin is a class with a nested ``Params`` dataclass and an ``api_version`` attribute,
constructed as ``cls(params)``. First-party plugins register exactly like third-party ones,
in a package's ``pyproject.toml``::

    [project.entry-points."toolkit.tokenizers"]
    whisper_vq = "plugins.whisper_vq:WhisperVQTokenizer"
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
from dataclasses import dataclass
from typing import Any

from toolkit.errors import PluginError, RecipeError, listing, suggest
from toolkit.params import parse_params

API_VERSION = 1
"""The plugin API version this toolkit implements; plugins declare the one they target."""

KINDS: dict[str, str] = {
    "tokenizer": "toolkit.tokenizers",
    "trunk": "toolkit.trunks",
    "splitter": "toolkit.splitters",
    "decoder": "toolkit.decoders",
    "dataset": "toolkit.datasets",
}
"""Plugin kind -> its entry-point group. Each kind's plugin classes subclass the kind's
abstract base, ``toolkit.contracts.BASES[kind]`` (checked when a class is loaded or registered)."""


@dataclass
class PluginInfo:
    """One installed plugin; ``error`` is set when it failed to import."""

    kind: str
    name: str
    distribution: str
    version: str
    value: str
    error: str | None = None


_extra: dict[tuple[str, str], type] = {}


def register(kind: str, name: str, cls: type) -> None:
    """Register a plugin class in-process (for notebooks and tests; packages use entry points)."""
    check_kind(kind)
    _check_plugin(kind, name, cls, "in-process")
    _extra[(kind, name)] = cls


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind '{kind}'; kinds: {listing(KINDS)}{suggest(kind, KINDS)}")
    return kind


def _entry_points(kind: str) -> dict[str, md.EntryPoint]:
    return {ep.name: ep for ep in md.entry_points(group=KINDS[kind])}


def _info(kind: str, ep: md.EntryPoint) -> PluginInfo:
    dist = getattr(ep, "dist", None)
    return PluginInfo(kind, ep.name, dist.metadata["Name"] if dist else "?",
                      dist.version if dist else "?", ep.value)


def available(kind: str | None = None, check: bool = False) -> list[PluginInfo]:
    """List installed plugins (of one kind, or all). ``check=True`` imports each to report errors."""
    kinds = [check_kind(kind)] if kind else list(KINDS)
    out = []
    for k in kinds:
        for ep in _entry_points(k).values():
            info = _info(k, ep)
            if check:
                try:
                    load(k, ep.name)
                except PluginError as err:
                    info.error = str(err)
            out.append(info)
        out += [PluginInfo(k, n, "(in-process)", "-", cls.__qualname__)
                for (kk, n), cls in _extra.items() if kk == k]
    return sorted(out, key=lambda p: (p.kind, p.name))


def names(kind: str) -> list[str]:
    return sorted(set(_entry_points(kind)) | {n for (k, n) in _extra if k == kind})


_cache: dict[tuple[str, str], type] = {}


def load(kind: str, name: str, path: str | None = None) -> type:
    """Import and return the plugin class ``name`` of ``kind``; errors name the recipe path."""
    check_kind(kind)
    if (kind, name) in _extra:
        return _extra[(kind, name)]
    if (kind, name) in _cache:
        return _cache[(kind, name)]
    eps = _entry_points(kind)
    if name not in eps:
        msg = f"unknown {kind} '{name}'; installed: {listing(names(kind))}{suggest(name, names(kind))}"
        raise RecipeError(path, msg) if path else PluginError(msg)
    info = _info(kind, eps[name])
    try:
        cls = eps[name].load()
    except Exception as err:  # a broken plugin must not break the others
        raise PluginError(f"{kind} plugin '{name}' from {info.distribution} {info.version} failed "
                          f"to import: {type(err).__name__}: {err}") from err
    _check_plugin(kind, name, cls, info.distribution)
    _cache[(kind, name)] = cls
    return cls


def _check_plugin(kind: str, name: str, cls: Any, dist: str) -> None:
    from toolkit.contracts import BASES  # kind -> abstract base; imported late (torch)

    base = BASES[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{kind} plugin '{name}' ({dist}) is not a subclass of "
                          f"toolkit.contracts.{base.__name__}")
    params = getattr(cls, "Params", None)
    if params is None or not dataclasses.is_dataclass(params):
        raise PluginError(f"{kind} plugin '{name}' ({dist}) declares no Params dataclass")
    version = getattr(cls, "api_version", None)
    if version != API_VERSION:
        raise PluginError(f"{kind} plugin '{name}' ({dist}) targets toolkit plugin API "
                          f"{version}, this toolkit implements {API_VERSION}; "
                          f"upgrade one of them")


def build(kind: str, name: str, /, **params: Any) -> Any:
    """Build a component: ``toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")``.

    Parameters are validated against the plugin's ``Params`` before anything is constructed.
    """
    cls = load(kind, name)
    runtime_names = {f.name for f in dataclasses.fields(cls.Params)
                     if f.metadata.get("toolkit_runtime")}
    settable = {k: v for k, v in params.items() if k not in runtime_names}
    given = {k: v for k, v in params.items() if k in runtime_names}
    return cls(parse_params(cls.Params, settable, f"{kind}:{name}", given))


def build_node(kind: str, node: Any, path: str, **runtime_values: Any) -> Any:
    """Build a component from a recipe node ``{plugin: NAME, params: {...}}``."""
    name, params = node_parts(node, path)
    cls = load(kind, name, f"{path}.plugin")
    return cls(parse_params(cls.Params, params, f"{path}.params", runtime_values))


def node_parts(node: Any, path: str) -> tuple[str, dict]:
    """Split a recipe plugin node into (name, params), checking its shape."""
    if not isinstance(node, dict):
        raise RecipeError(path, f"expected {{plugin: NAME, params: {{...}}}}, got {node!r}")
    extra = set(node) - {"plugin", "params"}
    if extra:
        key = sorted(extra)[0]
        raise RecipeError(f"{path}.{key}", f"unknown key; valid keys: params, plugin"
                                           f"{suggest(key, ['plugin', 'params'])}")
    if not isinstance(node.get("plugin"), str):
        raise RecipeError(f"{path}.plugin", "missing plugin name (a registered name, e.g. "
                                            f"{listing(names(KIND_OF_KEY.get(path, 'dataset')))})")
    params = node.get("params") or {}
    if not isinstance(params, dict):
        raise RecipeError(f"{path}.params", f"expected a mapping, got {params!r}")
    return node["plugin"], params


KIND_OF_KEY = {"tokenizer": "tokenizer", "trunk": "trunk", "splitter": "splitter",
               "decoder": "decoder", "data": "dataset"}
"""Recipe top-level keys that hold plugin nodes, and the plugin kind each names."""
