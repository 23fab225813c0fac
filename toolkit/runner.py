"""Run a recipe: make the run folder, save the resolved recipe, run each stage once.

A stage writes into ``<run>/<stage>.partial/``; when it returns, the runner writes
``COMPLETE.json`` (every file with its size) and renames the folder to ``<run>/<stage>/``.
A stage whose folder is complete is skipped; an incomplete one is run again (a stage may
resume from checkpoints it left in its ``.partial`` folder), and so is every stage after one
that ran, since its inputs changed.

The runner also makes the per-machine choices once and says so (``precision: auto``), keeps
Lightning's chatter in ``<stage>/stage.log``, prints the whole job's estimated time left after
each training stage's first steps (:mod:`toolkit.timing`) and a summary line per stage at the
end, and turns SIGTERM / Ctrl-C into a one-line stop with exit status 143 / 130 that the same
command resumes (:mod:`toolkit.training.stopping`).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit import timing
from toolkit.io import write_json, write_text
from toolkit.recipe import dump_recipe, load_recipe, recipe_lineage, stage_params, stage_steps, \
    validate_recipe
from toolkit.run_folder import is_complete, publish
from toolkit.stages import StageContext, registered
from toolkit.training.quiet import stage_log
from toolkit.training.stopping import Stopped, stop_on_signals


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


def make_clock(recipe: dict[str, Any], names: list[str], run_dir: Path,
               lineage: Sequence[str] = ()) -> timing.JobClock:
    """A clock for this run's stages, with this machine's matmul throughput in its precision;
    ``lineage``: the recipes it extends, whose profiles stand in when it has none."""
    import torch

    from toolkit.machine import cpu_kind, matmul_gflops, resolve_trainer

    steps = stage_steps(recipe, names)
    precision = resolve_trainer(recipe.get("trainer")).get("precision", "32-true")
    dtype = torch.bfloat16 if str(precision).startswith("bf16") else torch.float32
    kind = cpu_kind()
    reference = timing.reference_profile([recipe["name"], *lineage], str(precision), run_dir, kind)
    return timing.JobClock(steps, reference, matmul_gflops(dtype, seconds=0.3), kind)


def save_timings(run_dir: Path, clock: timing.JobClock, recipe: dict[str, Any]) -> None:
    """Add the stages timed so far to ``RUN/timings.json`` (earlier invocations' stages stay)."""
    from toolkit.machine import resolve_trainer

    profile = clock.profile(resolve_trainer(recipe.get("trainer")).get("precision"))
    earlier = timing.read_profile(run_dir / timing.TIMINGS) or {"stages": {}}
    profile["stages"] = {**earlier["stages"], **profile["stages"]}
    write_json(run_dir / timing.TIMINGS, profile)


def run_stage(name: str, recipe: dict[str, Any], run_dir: Path, debug: bool) -> float:
    """Run one stage into its ``.partial`` folder and publish it; returns its seconds."""
    work_dir = run_dir / f"{name}.partial"
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(recipe.get("seed", 0)))
    ctx = StageContext(name, recipe, stage_params(recipe, name), run_dir, work_dir, debug)
    start = time.perf_counter()
    try:
        with stage_log(work_dir / "stage.log"):
            registered()[name].run(ctx)
    except Stopped as stop:
        stop.stage = name
        raise
    except KeyboardInterrupt:
        raise Stopped(signal.SIGINT, name) from None
    elapsed = time.perf_counter() - start
    publish(work_dir, run_dir / name, {"stage": name, "seconds": round(elapsed, 2)})
    return elapsed


def run_recipe(recipe_path: str | Path, overrides: list[str] | None = None,
               debug: bool = False, only: list[str] | None = None) -> Path:
    """Run every stage of a recipe that is not complete yet; returns the run folder."""
    from rich.console import Console

    from toolkit.machine import describe_choices

    console = Console(stderr=True)
    recipe = prepare(recipe_path, overrides)
    run_dir = Path(recipe["out"])
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
    names = [n for n in recipe.get("stages") or [] if not only or n in only]
    console.print(f"[bold]run[/bold] {recipe['name']} -> {run_dir}  stages: {', '.join(names)}")
    console.print(describe_choices(recipe.get("trainer")), soft_wrap=True, markup=False)
    clock = make_clock(recipe, names, run_dir, recipe_lineage(recipe_path))
    summary = []
    upstream_ran = False  # a stage that ran makes the complete outputs after it stale
    with stop_on_signals(), timing.running(clock):
        for name in names:
            final_dir = run_dir / name
            if is_complete(final_dir) and not upstream_ran:
                console.print(f"[green]✓[/green] {name}: complete, skipped")
                continue
            upstream_ran = True
            console.print(f"[bold cyan]▶[/bold cyan] {name}: {registered()[name].description}")
            elapsed = run_stage(name, recipe, run_dir, debug)
            clock.stage_done(name, elapsed)
            save_timings(run_dir, clock, recipe)
            console.print(f"[green]✓[/green] {name}: done in {elapsed:.1f}s")
            summary.append(f"  {name:<10} {timing.format_duration(elapsed):>8}  {final_dir}")
    if summary:
        console.print("stages run:\n" + "\n".join(summary))
    return run_dir
