"""Recipes: OmegaConf YAML with ``extends:``, interpolation and ``key=value`` overrides.

:func:`load_recipe` returns the fully resolved recipe as plain data; :func:`validate_recipe`
checks every plugin node, stage and trainer argument before anything heavy runs.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from toolkit.errors import RecipeError, listing, suggest
from toolkit.params import parse_params
from toolkit.registry import KIND_OF_KEY, load, node_parts

TOP_LEVEL = {
    "name": "the run's name (default: the recipe file's name)",
    "extends": "a recipe (path relative to this file) whose keys this one overrides",
    "out": "the run folder (default: runs/<name>)",
    "seed": "global random seed",
    "vars": "free-form values for ${vars.x} interpolation",
    "tokenizer": "speech tokenizer plugin node",
    "trunk": "LLM trunk plugin node",
    "splitter": "modality splitter plugin node",
    "decoder": "speech decoder plugin node",
    "data": "dataset plugin node",
    "stages": "the list of stages to run, in order",
    "stage_args": "per-stage options: stage_args.<stage>.<option>",
    "trainer": "plain lightning.Trainer keyword arguments",
    "kernels": "kernel switches, e.g. {attention: auto | triton | sdpa}",
}


def _read_yaml(path: Path, key: str) -> DictConfig:
    if not path.is_file():
        raise RecipeError(key, f"recipe file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError("", f"YAML syntax error in {where}: {problem}") from None
    except OmegaConfBaseException as err:
        raise RecipeError("", f"cannot read {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(cfg, DictConfig):
        raise RecipeError("", f"{path} must hold a mapping of recipe keys, not a list")
    return cfg


def _with_bases(path: Path, seen: tuple[Path, ...] = (), lineage: list[str] | None = None) -> DictConfig:
    """The recipe at ``path`` merged over the recipes it extends; ``lineage`` (when given)
    collects their file stems, this recipe's first."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise RecipeError("extends", f"recipes extend each other in a loop: {chain}")
    cfg = _read_yaml(path, "extends" if seen else "")
    if lineage is not None:
        lineage.append(path.stem)
    base = cfg.pop("extends", None)
    if base is None:
        return cfg
    bases = [base] if isinstance(base, str) else list(base)
    merged = OmegaConf.create({})
    for b in bases:
        if not isinstance(b, str):
            raise RecipeError("extends", f"expected a recipe path, got {b!r}")
        merged = OmegaConf.merge(merged, _with_bases(path.parent / b, (*seen, path), lineage))
    return OmegaConf.merge(merged, cfg)


def recipe_lineage(path: str | Path) -> list[str]:
    """The file stems of the recipe at ``path`` and of every recipe it extends, nearest first
    (``moss_full_hearing.yaml`` -> ``["moss_full_hearing", "moss_full"]``): a derived recipe
    with no measured profile of its own is timed against its base's."""
    lineage: list[str] = []
    _with_bases(Path(path), lineage=lineage)
    return lineage


def parse_overrides(overrides: list[str]) -> DictConfig:
    """``["trainer.max_steps=5", "out=/tmp/r"]`` -> a config to merge on top."""
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise RecipeError("", f"bad override '{item}': expected key=value")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise RecipeError("", f"bad override: {str(err).splitlines()[0]}") from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a recipe, apply its bases and the overrides, resolve interpolations."""
    path = Path(path)
    cfg = _with_bases(path)
    cfg = OmegaConf.merge(cfg, parse_overrides(overrides or []))
    if "name" not in cfg:
        cfg.name = path.stem
    if not cfg.get("out"):
        cfg.out = "runs/${name}"  # before resolving, so recipes may use ${out}
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        msg = str(err).splitlines()[0]
        raise RecipeError(key, f"bad interpolation: {msg}") from None
    return data


def validate_recipe(recipe: dict[str, Any]) -> None:
    """Check every key of a loaded recipe; raise :class:`RecipeError` on the first problem."""
    from toolkit.stages import registered

    for key in recipe:
        if key not in TOP_LEVEL:
            raise RecipeError(key, f"unknown key; valid keys: {listing(TOP_LEVEL)}"
                                   f"{suggest(key, TOP_LEVEL)}")
    for key, kind in KIND_OF_KEY.items():
        if recipe.get(key) is not None:
            name, params = node_parts(recipe[key], key)
            cls = load(kind, name, f"{key}.plugin")
            parse_params(cls.Params, params, f"{key}.params")
    stages = recipe.get("stages") or []
    if not isinstance(stages, list):
        raise RecipeError("stages", f"expected a list of stage names, got {stages!r}")
    known = registered()
    for i, name in enumerate(stages):
        if name not in known:
            raise RecipeError(f"stages[{i}]", f"unknown stage '{name}'; stages: "
                                              f"{listing(known)}{suggest(str(name), known)}")
        for need in known[name].needs:
            if need not in stages[:i]:
                raise RecipeError(f"stages[{i}]", f"stage '{name}' needs stage '{need}' "
                                                  f"before it")
    args = recipe.get("stage_args") or {}
    if not isinstance(args, dict):
        raise RecipeError("stage_args", "expected a mapping of stage name -> options")
    for name, values in args.items():
        if name not in known:
            raise RecipeError(f"stage_args.{name}", f"unknown stage; stages: {listing(known)}"
                                                    f"{suggest(name, known)}")
        parse_params(known[name].Params, values, f"stage_args.{name}")
    _validate_trainer(recipe.get("trainer") or {})
    _check_scalar(recipe, "seed", int)
    _check_scalar(recipe, "name", str)
    _check_scalar(recipe, "out", str)


def _check_scalar(recipe: dict[str, Any], key: str, tp: type) -> None:
    value = recipe.get(key)
    if key in recipe and (not isinstance(value, tp) or isinstance(value, bool)):
        raise RecipeError(key, f"expected {tp.__name__}, got {value!r}")


TOOLKIT_OWNS = {
    "enable_checkpointing": "the toolkit writes its own safetensors checkpoints "
                            "(<stage>/checkpoints/last.ckpt); remove this key",
    "callbacks": "a recipe cannot name callback objects; use the Python API "
                 "(toolkit.training.fit) to add callbacks",
}


def _validate_trainer(trainer: Any) -> None:
    """Check the ``trainer`` keys, then build a Trainer from them (precision ``auto`` made for
    this machine) so that an invalid value (``accelerator: gpu`` without a GPU, ``precision:
    17``) is a one-line error before any stage runs."""
    if not isinstance(trainer, dict):
        raise RecipeError("trainer", f"expected a mapping of lightning.Trainer arguments, "
                                     f"got {trainer!r}")
    from lightning import Trainer

    from toolkit.machine import resolve_trainer

    valid = [p for p in inspect.signature(Trainer.__init__).parameters if p != "self"]
    for key in trainer:
        if key not in valid:
            raise RecipeError(f"trainer.{key}", f"not a lightning.Trainer argument"
                                                f"{suggest(key, valid)}")
        if key in TOOLKIT_OWNS and trainer[key]:
            raise RecipeError(f"trainer.{key}", TOOLKIT_OWNS[key])
    settings = resolve_trainer(trainer)
    for key, value in settings.items():
        _try_trainer({key: value}, f"trainer.{key}")
    _try_trainer(settings, "trainer")


def _try_trainer(kwargs: dict[str, Any], where: str) -> None:
    import logging

    from lightning import Trainer

    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                 enable_model_summary=False)
    log = logging.getLogger("lightning.pytorch")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        Trainer(**{**quiet, **kwargs})
    except Exception as err:  # Lightning raises several types for a bad value
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RecipeError(where, f"{first} (value {kwargs.get(where.split('.')[-1], kwargs)!r})"
                          if "." in where else first) from None
    finally:
        log.setLevel(level)


def stage_params(recipe: dict[str, Any], name: str) -> Any:
    """The validated Params of stage ``name`` from ``stage_args``."""
    from toolkit.stages import registered

    spec = registered()[name]
    values = (recipe.get("stage_args") or {}).get(name)
    params = parse_params(spec.Params, values, f"stage_args.{name}")
    steps = (recipe.get("trainer") or {}).get("max_steps")
    if steps is not None and any(f.name == "max_steps" for f in dataclasses.fields(params)):
        params = dataclasses.replace(params, max_steps=int(steps))  # trainer.max_steps: every stage
    return params


def stage_steps(recipe: dict[str, Any], names: list[str]) -> dict[str, int | None]:
    """Each stage's optimizer steps (``max_steps`` after overrides), None for stages that do
    not train."""
    return {n: getattr(stage_params(recipe, n), "max_steps", None) for n in names}


def dump_recipe(recipe: dict[str, Any]) -> str:
    """The recipe as YAML text."""
    return OmegaConf.to_yaml(OmegaConf.create(recipe))
