"""Run a recipe: make the run folder, save the resolved recipe, run each stage once.

A stage writes into ``<run>/<stage>.partial/``; when it returns, the runner writes
``COMPLETE.json`` (every file with its size) and renames the folder to ``<run>/<stage>/``.
A stage whose folder is complete is skipped; an incomplete one is run again (a stage may
resume from checkpoints it left in its ``.partial`` folder), and so is every stage after one
that ran, since its inputs changed.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.io import read_json, write_json, write_text
from toolkit.recipe import dump_recipe, load_recipe, stage_params, validate_recipe
from toolkit.stages import StageContext, registered

MARKER = "COMPLETE.json"


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a marker whose listed files all exist with their sizes."""
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        files = read_json(marker).get("files", {})
    except (ToolkitError, AttributeError):
        return False
    return all((folder / name).is_file() and (folder / name).stat().st_size == size
               for name, size in files.items())


def publish(work_dir: Path, final_dir: Path, info: dict[str, Any]) -> None:
    """Mark ``work_dir`` complete and move it to ``final_dir``."""
    files = {str(p.relative_to(work_dir)): p.stat().st_size
             for p in sorted(work_dir.rglob("*")) if p.is_file() and p.name != MARKER}
    write_json(work_dir / MARKER, {**info, "files": files})
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(work_dir, final_dir)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(recipe_path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load and validate a recipe (no side effects)."""
    recipe = load_recipe(recipe_path, overrides)
    validate_recipe(recipe)
    return recipe


def run_recipe(recipe_path: str | Path, overrides: list[str] | None = None,
               debug: bool = False, only: list[str] | None = None) -> Path:
    """Run every stage of a recipe that is not complete yet; returns the run folder."""
    from rich.console import Console

    console = Console(stderr=True)
    recipe = prepare(recipe_path, overrides)
    run_dir = Path(recipe["out"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
    stages = registered()
    names = recipe.get("stages") or []
    console.print(f"[bold]run[/bold] {recipe['name']} -> {run_dir}  stages: {', '.join(names)}")
    upstream_ran = False  # a stage that ran makes the complete outputs after it stale
    for name in names:
        if only and name not in only:
            continue
        final_dir = run_dir / name
        if is_complete(final_dir) and not upstream_ran:
            console.print(f"[green]✓[/green] {name}: complete, skipped")
            continue
        upstream_ran = True
        work_dir = run_dir / f"{name}.partial"
        work_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(int(recipe.get("seed", 0)))
        ctx = StageContext(name, recipe, stage_params(recipe, name), run_dir, work_dir, debug)
        console.print(f"[bold cyan]▶[/bold cyan] {name}: {stages[name].description}")
        start = time.perf_counter()
        stages[name].run(ctx)
        elapsed = time.perf_counter() - start
        publish(work_dir, final_dir, {"stage": name, "seconds": round(elapsed, 2)})
        console.print(f"[green]✓[/green] {name}: done in {elapsed:.1f}s")
    return run_dir
