"""Stages: the steps a recipe's ``stages:`` list runs in order.

A stage is a function registered with :func:`stage`; it receives a :class:`StageContext`
and writes its outputs under ``ctx.work_dir``. The runner publishes that folder atomically
when the function returns, so a stage is either complete or re-run. Every module in this
package is imported on first use, so a new stage is one new file.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.run_folder import is_complete


@dataclass
class NoParams:
    """A stage without options."""


@dataclass
class StageSpec:
    name: str
    run: Callable[["StageContext"], None]
    Params: type = NoParams
    needs: tuple[str, ...] = ()
    """Recipe stages whose outputs this one reads (they must come earlier in ``stages:``)."""
    description: str = ""


_STAGES: dict[str, StageSpec] = {}
_discovered = False


def stage(name: str, params: type = NoParams, needs: tuple[str, ...] = ()) -> Callable:
    """Register ``fn(ctx)`` as stage ``name`` with a ``params`` dataclass (``stage_args.NAME``)."""
    if not dataclasses.is_dataclass(params):
        raise TypeError(f"stage {name}: params must be a dataclass")

    def wrap(fn: Callable[["StageContext"], None]) -> Callable:
        summary = (fn.__doc__ or "").strip().split("\n\n")[0]  # the first paragraph
        _STAGES[name] = StageSpec(name, fn, params, tuple(needs), " ".join(summary.split()))
        return fn

    return wrap


def registered() -> dict[str, StageSpec]:
    """All stages, importing this package's modules once."""
    global _discovered
    if not _discovered:
        _discovered = True
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
    return _STAGES


@dataclass
class StageContext:
    """What a stage gets: the resolved recipe, its params and where to read and write."""

    name: str
    recipe: dict[str, Any]
    params: Any
    run_dir: Path
    work_dir: Path
    debug: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def output(self, stage_name: str) -> Path:
        """The published output folder of an earlier stage of this run."""
        path = self.run_dir / stage_name
        if not is_complete(path):
            raise ToolkitError(f"stage {self.name} needs the output of stage {stage_name}, "
                               f"which is not complete in {self.run_dir} (add it to stages:)")
        return path

    def build(self, key: str, **runtime: Any) -> Any:
        """Build the component of recipe key ``key`` (``tokenizer``, ``trunk``, ...)."""
        from toolkit.registry import KIND_OF_KEY, build_node

        if key not in self.recipe or self.recipe[key] is None:
            raise ToolkitError(f"recipe error at {key}: stage {self.name} needs a {key} plugin")
        return build_node(KIND_OF_KEY[key], self.recipe[key], key, **runtime)

    @property
    def seed(self) -> int:
        return int(self.recipe.get("seed", 0))
