"""Checks that :mod:`toolkit.loading` runs on every saved thing before loading it.

Each problem is one :class:`ToolkitError` line naming the file, the tensor, what the model
expects and what the file holds:

- completeness: a folder with a ``COMPLETE.json`` marker (written when a stage finishes, and by
  :func:`toolkit.loading.export_model`) must still hold every file it lists, at the listed size;
  a stage folder of a run (its parent holds ``recipe.yaml``) must have the marker.
- tensors: names, shapes and dtypes of a safetensors file against the module it is loaded into.
  Floating-point tensors of another precision are accepted (loading casts them, as
  ``load_state_dict`` does); a different kind (integer for float, ...) is an error.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.io import read_json, write_json

MARKER = "COMPLETE.json"
"""The marker file of a finished stage (the same name :mod:`toolkit.runner` writes)."""


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


def write_marker(folder: Path, info: dict) -> Path:
    """Write ``folder/COMPLETE.json`` listing every file with its size (as the runner does
    when a stage finishes), so a later change to the folder is found when it is loaded."""
    files = {str(p.relative_to(folder)): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}
    return write_json(folder / MARKER, {**info, "files": files})


def _shape(t: Tensor) -> str:
    return str(list(t.shape))


def check_tensors(path: Path, found: dict[str, Tensor], expected: dict[str, Tensor],
                  required: set[str] | None = None, what: str = "this model") -> None:
    """Check tensors ``found`` (read from ``path``) against ``expected`` (a state dict).

    Every name found must be expected, with the expected shape and a compatible dtype; every
    name in ``required`` (default: all expected) must be found. Raises one line naming
    ``path``, the tensor, the expected and the found."""
    for name in sorted(found):
        if name not in expected:
            raise ToolkitError(f"{path}: unexpected tensor '{name}' (not part of {what})")
        want, got = expected[name], found[name]
        if want.shape != got.shape:
            raise ToolkitError(f"{path}: tensor '{name}' has shape {_shape(got)}, "
                               f"{what} expects {_shape(want)}")
        if want.dtype != got.dtype and not (want.is_floating_point() and got.is_floating_point()):
            raise ToolkitError(f"{path}: tensor '{name}' has dtype {got.dtype}, "
                               f"{what} expects {want.dtype}")
    missing = sorted((set(expected) if required is None else required) - set(found))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ToolkitError(f"{path}: missing tensor '{missing[0]}'{more} "
                           f"({what} expects shape {_shape(expected[missing[0]])})")


def cast_like(found: dict[str, Tensor], expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """``found`` with each tensor in the dtype of its ``expected`` counterpart."""
    return {k: v.to(expected[k].dtype) if k in expected else v for k, v in found.items()}


__all__ = ["MARKER", "incomplete_reason", "check_complete", "check_tensors", "cast_like",
           "is_run_stage", "tensor_summary"]
