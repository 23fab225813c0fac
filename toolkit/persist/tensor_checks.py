"""Tensor checks the loaders run on every safetensors file before loading it.

Names, shapes and dtypes of a file's tensors against the module they are loaded into; each
problem is one :class:`ToolkitError` line naming the file, the tensor, what the model expects
and what the file holds. Floating-point tensors of another precision are accepted (loading
casts them, as ``load_state_dict`` does); a different kind (integer for float, ...) is an
error. Folder completeness (``COMPLETE.json``) is :mod:`toolkit.run_folder`'s.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from toolkit.errors import ToolkitError

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


__all__ = ["check_tensors", "cast_like"]
