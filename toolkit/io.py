"""Atomic file output and safetensors checkpoints (nothing we load is unpickled)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from toolkit.errors import ToolkitError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolkitError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ToolkitError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None


def read_jsonl(path: str | Path, errors: list[dict[str, Any]] | None = None) -> list[dict]:
    """Rows of a JSONL file (a manifest: one JSON object a line); blank lines are ignored.

    A missing file raises :class:`ToolkitError` naming it (a caller for which the file is
    optional checks ``is_file()`` first). A line that is not a JSON object raises
    :class:`ToolkitError` naming ``file:line``, unless ``errors`` is a list: then the line is
    skipped and ``{"line", "path", "reason", "detail"}`` is appended to it.
    """
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: manifest not found")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except (json.JSONDecodeError, ValueError) as err:
                msg = getattr(err, "msg", str(err))
                if errors is None:
                    raise ToolkitError(f"{path}:{lineno}: bad manifest line ({msg})") from None
                errors.append({"path": f"{path}:{lineno}", "line": lineno, "reason": "bad_json",
                               "detail": f"bad manifest line ({msg})"})
                continue
            rows.append(row)
    return rows


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file atomically. Shared storage is copied so any state_dict works."""
    flat, seen = {}, set()
    for key, value in tensors.items():
        value = value.detach().contiguous()
        storage = value.untyped_storage()
        shared = storage.data_ptr() in seen or storage.nbytes() != value.numel() * value.element_size()
        seen.add(storage.data_ptr())
        flat[key] = value.clone() if shared else value  # tied weights and views are stored apart
    return atomic_write(path, lambda p: save_file(flat, str(p), metadata=metadata))


def load_tensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file with a one-line error for a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: checkpoint not found")
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise ToolkitError(f"{path}: not a readable safetensors file ({err})") from None
