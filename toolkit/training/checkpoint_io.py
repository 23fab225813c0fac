"""Lightning checkpoints as one safetensors file: tensors as tensors, everything else as JSON.

Lightning's own format pickles; ours never unpickles anything. A checkpoint dict is walked once:
each tensor is stored under a generated key and replaced by a reference, and the remaining
structure (loop progress, optimizer hyper-parameters, scheduler state, data position) is
encoded as JSON in the file's metadata, with tuples and non-string dict keys kept exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors import safe_open

from toolkit.errors import ToolkitError
from toolkit.io import save_tensors

_META_KEY = "lightning_state"


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, (torch.dtype, torch.device)):
        return {"__torch__": str(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ToolkitError(f"checkpoint holds a {type(obj).__name__}, which is neither a tensor nor "
                       f"plain data; keep training state to tensors, numbers and strings")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__torch__" in obj:
        text = obj["__torch__"]
        return getattr(torch, text.removeprefix("torch.")) if text.startswith("torch.") else torch.device(text)
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a nested training state (tensors + plain data) to one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    return save_tensors(path, tensors, metadata={_META_KEY: json.dumps(skeleton)})


def load_state(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_state`."""
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt", device=device) as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises several types for damaged files
        raise ToolkitError(f"{path}: not a readable checkpoint ({err})") from None
    if _META_KEY not in meta:
        raise ToolkitError(f"{path}: a safetensors file without training state")
    return _decode(json.loads(meta[_META_KEY]), tensors)


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning ``CheckpointIO`` plugin writing :func:`save_state` files."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any = None) -> None:
        save_state(path, checkpoint)

    def load_checkpoint(self, path: Any, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return load_state(path)

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)
