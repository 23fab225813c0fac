"""How long a run will take: per-stage time profiles, and the whole job's remaining time.

A run writes ``timings.json`` (per stage: seconds and optimizer steps; the machine's CPU kind and
matmul throughput in the precision used). The repository ships measured main jobs as profiles in
``toolkit/profiles/<recipe name>.<precision>[.<label>].json``, one per precision and CPU kind (a
run in fp32 on a CPU without native bf16 is timed against the fp32 profile, not scaled from a
bf16 one; a bf16 run on a CPU with avx512_bf16 but no AMX against one measured on such a CPU).
An estimate for this machine scales each reference stage by the ratio of matmul throughputs,
then, once stages of this run have timed themselves, by how far off the scaled reference was
(stages are not all matmul-bound: moss_full's tokenizer stage took 485 s on a 2-core Xeon with
AMX and 486 s on a 2-core EPYC with avx512_bf16 whose bf16 matmuls are several times slower).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROFILES = Path(__file__).parent / "profiles"
TIMINGS = "timings.json"


def read_profile(path: Path) -> dict[str, Any] | None:
    """A timings file as ``{"gflops": float, "stages": {name: {"seconds", "steps"}}}``, or None
    when absent or unreadable (a profile only informs an estimate)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("stages"), dict) else None


def reference_profile(recipe_names: str | Sequence[str], precision: str,
                      run_dir: Path | None = None, cpu_kind: str | None = None) -> dict[str, Any] | None:
    """This run's own earlier timings when it is being resumed, else a shipped profile of
    ``precision`` (a resolved one: ``bf16-mixed``, ``32-true``, ...) of the first of
    ``recipe_names`` (a recipe, then the recipes it extends) that has one, else None. A recipe
    may ship one profile per CPU kind (``<recipe>.<precision>[.<label>].json``): the one
    measured on ``cpu_kind`` (see :func:`toolkit.machine.cpu_kind`) is preferred, then one that
    recorded its matmul speed (so it can be scaled). The profile's ``recipe`` names the recipe
    it was measured for."""
    names = [recipe_names] if isinstance(recipe_names, str) else list(recipe_names)
    own = read_profile(run_dir / TIMINGS) if run_dir is not None else None
    if own is not None:
        return {"recipe": names[0], **own}
    for name in names:
        paths = [PROFILES / f"{name}.{precision}.json", *sorted(PROFILES.glob(f"{name}.{precision}.*.json"))]
        found = [prof for path in paths if (prof := read_profile(path)) is not None]
        if found:
            best = max(found, key=lambda prof: (prof.get("cpu_kind") == cpu_kind, prof.get("gflops") is not None))
            return {"recipe": name, **best}
    return None


def format_duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 90 else f"{minutes:.0f} min" if minutes < 90 \
        else f"{minutes / 60:.1f} h"


@dataclass
class JobClock:
    """Estimates the remaining time of a run whose stages are ``stages`` (name -> steps or None)."""

    stages: dict[str, int | None]
    reference: dict[str, Any] | None = None
    gflops: float | None = None
    """This machine's matmul throughput in the run's precision."""
    cpu_kind: str | None = None
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: float = 1.0

    def scaled_reference(self, name: str) -> float | None:
        """Reference seconds of stage ``name`` scaled to this machine and its step count."""
        ref = (self.reference or {}).get("stages", {}).get(name)
        if not ref:
            return None
        seconds = float(ref["seconds"])
        steps, ref_steps = self.stages.get(name), ref.get("steps")
        if steps and ref_steps:
            seconds *= steps / ref_steps
        ref_gflops = (self.reference or {}).get("gflops")
        if ref_gflops and self.gflops:
            seconds *= ref_gflops / self.gflops
        return seconds * self.calibration

    def remaining_after(self, name: str) -> tuple[float, list[str]]:
        """Estimated seconds of the stages after ``name`` and the names with no estimate."""
        names = list(self.stages)
        total, unknown = 0.0, []
        for later in names[names.index(name) + 1:]:
            if later in self.done:
                continue
            est = self.scaled_reference(later)
            total += est or 0.0
            if est is None:
                unknown.append(later)
        return total, unknown

    def first_steps(self, name: str, seconds_per_step: float, steps_left: int) -> str:
        """The line printed after a stage's first steps: its pace, and the job's time left."""
        stage_left = seconds_per_step * steps_left
        ref = self.scaled_reference(name)
        steps = self.stages.get(name)
        if ref and steps:
            ref_per_step = ref / self.calibration / steps
            self.calibration = min(max(seconds_per_step / ref_per_step, 0.2), 5.0)
        rest, unknown = self.remaining_after(name)
        line = (f"{name}: {seconds_per_step:.2f} s/step, ~{format_duration(stage_left)} left in "
                f"this stage; whole job ~{format_duration(stage_left + rest)} left")
        return line + (f" (no estimate for {', '.join(unknown)})" if unknown else "")

    def stage_done(self, name: str, seconds: float) -> None:
        self.done[name] = {"seconds": round(seconds, 1), "steps": self.stages.get(name)}

    def profile(self, precision: Any) -> dict[str, Any]:
        """What ``timings.json`` holds after the stages done so far."""
        return {"gflops": self.gflops, "cpu_kind": self.cpu_kind, "precision": precision,
                "stages": dict(self.done)}


@dataclass
class PartTimes:
    """Seconds spent in each named part of a long piece of work, in the order the parts ran
    (a part entered twice adds up), so a report can say where its time went."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)


_current: JobClock | None = None


@contextmanager
def running(clock: JobClock) -> Iterator[JobClock]:
    """Make ``clock`` the one training stages report their first steps to."""
    global _current
    before, _current = _current, clock
    try:
        yield clock
    finally:
        _current = before


def current() -> JobClock | None:
    return _current
