"""The rules of a run folder, in one place for the runner, the stages and the loaders.

A run folder holds ``recipe.yaml`` and one folder per stage. A stage writes into
``RUN/<stage>.partial/``; when it returns, :func:`publish` writes ``COMPLETE.json`` (every file
with its size) and renames the folder to ``RUN/<stage>/``. A folder is complete when its marker
lists files that all still exist at their listed sizes; anything else is unfinished or damaged,
and the checks below say which in one line naming the file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.io import read_json, write_json

MARKER = "COMPLETE.json"
"""The marker file of a finished stage or export."""
LM_STAGES = ("sft", "stage2", "stage1")
"""LM stages in order of preference: the latest one a run has is the model."""
LM_STAGES_IN_ORDER = tuple(reversed(LM_STAGES))
"""The LM stages in the order a run trains them."""


def write_marker(folder: Path, info: dict[str, Any]) -> Path:
    """Write ``folder/COMPLETE.json`` listing every file with its size, so a later change to
    the folder is found when it is loaded."""
    files = {str(p.relative_to(folder)): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}
    return write_json(folder / MARKER, {**info, "files": files})


def publish(work_dir: Path, final_dir: Path, info: dict[str, Any]) -> None:
    """Mark ``work_dir`` complete and move it to ``final_dir``."""
    write_marker(work_dir, info)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(work_dir, final_dir)


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a marker whose listed files all exist with their sizes."""
    return (folder / MARKER).is_file() and incomplete_reason(folder) is None


def is_run_stage(folder: Path) -> bool:
    """True for ``RUN/<stage>`` (and ``RUN/<stage>.partial``): the parent holds ``recipe.yaml``."""
    return (folder.parent / "recipe.yaml").is_file()


def unfinished_reason(folder: Path) -> str | None:
    """Why ``folder`` is a stage that did not finish (a ``.partial`` folder, or a run's stage
    folder without its marker), or None."""
    if (folder / MARKER).is_file():
        return None
    if folder.name.endswith(".partial"):
        return f"{folder}: the {folder.name[:-len('.partial')]} stage did not finish (no {MARKER})"
    if is_run_stage(folder):
        return f"{folder}: no {MARKER} (the {folder.name} stage did not finish, or the folder was changed)"
    return None


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` is not a complete saved thing (one line naming the file), or None: it did
    not finish (:func:`unfinished_reason`), or a file its marker lists is missing or has
    another size than listed."""
    reason = unfinished_reason(folder)
    marker = folder / MARKER
    if reason is not None or not marker.is_file():
        return reason
    try:
        files = read_json(marker).get("files", {})
    except (ToolkitError, AttributeError):
        return f"{marker}: not a valid marker (damaged)"
    for name, size in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            return f"{path}: missing (listed in {marker})"
        if path.stat().st_size != size:
            return (f"{path}: {path.stat().st_size} bytes where {MARKER} lists {size} "
                    f"(truncated or changed after it was saved)")
    return None


def check_finished(folder: Path) -> None:
    """Raise the one-line :func:`unfinished_reason` of ``folder``, if any (check this before
    reading files, :func:`check_complete` after checking them, so a file that does not fit
    is named with its tensor rather than only by its size)."""
    reason = unfinished_reason(folder)
    if reason is not None:
        raise ToolkitError(reason)


def check_complete(folder: Path) -> None:
    """Raise the one-line :func:`incomplete_reason` of ``folder``, if any."""
    reason = incomplete_reason(folder)
    if reason is not None:
        raise ToolkitError(reason)


def stage_folder(run_dir: Path, stage: str) -> Path | None:
    """The folder of ``stage`` in a run: ``RUN/stage`` when it exists, else ``RUN/stage.partial``
    when the stage started but did not finish, else None (the run does not have it)."""
    for folder in (run_dir / stage, run_dir / f"{stage}.partial"):
        if folder.is_dir():
            return folder
    return None


def latest_lm_stage(run_dir: Path) -> str | None:
    """The newest LM stage the run has (complete or not: loading an unfinished one is an error,
    never a reason to take an older one), or None."""
    return next((s for s in LM_STAGES if stage_folder(run_dir, s) is not None), None)


__all__ = ["MARKER", "LM_STAGES", "LM_STAGES_IN_ORDER", "write_marker", "publish", "is_complete",
           "is_run_stage", "unfinished_reason", "incomplete_reason", "check_finished",
           "check_complete", "stage_folder", "latest_lm_stage"]
