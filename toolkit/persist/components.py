"""Saving and loading the trained tokenizer and decoder (the components a stage trains).

A component stage folder holds ``{stem}.json`` (``{"plugin", "params", "metrics"}``) and
``{stem}.safetensors`` with what training changed (:func:`trained_state`: trainable parameters
and buffers; frozen pretrained weights come back when the plugin is built). Every load is
checked (the folder's ``COMPLETE.json``, tensor names, shapes and dtypes) and a problem is one
:class:`ToolkitError` line naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.io import load_tensors, read_json, save_tensors, write_json
from toolkit.params import to_dict
from toolkit.persist.tensor_checks import cast_like, check_tensors
from toolkit.registry import KIND_OF_KEY, build, build_node
from toolkit.run_folder import check_complete, check_finished, stage_folder


def trained_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and all buffers (what training changed)."""
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    return {k: v for k, v in module.state_dict().items() if k not in frozen}


def needs_training(module: nn.Module) -> bool:
    """False for a component with nothing to train: ``trainable`` False (a pretrained folder)
    or no trainable parameter (rule-based). Its stage saves it as built (pass-through)."""
    return bool(getattr(module, "trainable", True)) and any(p.requires_grad for p in module.parameters())


def save_component(folder: Path, stem: str, kind_name: str, params: Any, module: nn.Module,
                   metrics: dict[str, Any]) -> None:
    """Write ``{stem}.safetensors`` (:func:`trained_state`) and ``{stem}.json`` into ``folder``."""
    save_tensors(folder / f"{stem}.safetensors", trained_state(module))
    write_json(folder / f"{stem}.json", {"plugin": kind_name, "params": to_dict(params),
                                         "metrics": metrics})


def build_component(node: dict[str, Any], key: str, state: dict[str, torch.Tensor] | None,
                    where: str) -> nn.Module:
    """Build the ``tokenizer`` / ``decoder`` plugin of ``node`` and load its whole ``state``
    (read from ``where``; every tensor must fit: names, shapes, dtypes)."""
    module = build_node(KIND_OF_KEY[key], node, key)
    if state is not None:
        expected = module.state_dict()
        check_tensors(Path(where), state, expected, what=f"{key} plugin '{node['plugin']}'")
        module.load_state_dict(cast_like(state, expected), strict=True)
    return module.eval()


def load_component(folder: str | Path, stem: str, kind: str) -> nn.Module:
    """A trained tokenizer / decoder saved by its stage (``{stem}.json`` + ``{stem}.safetensors``
    holding the trained state, see :func:`trained_state`), from the
    stage folder or from a run folder (``RUN/{stem}``)."""
    folder = Path(folder)
    if (folder / "recipe.yaml").is_file():  # a run folder
        run, folder = folder, stage_folder(folder, stem)
        if folder is None:
            raise ToolkitError(f"{run / stem}: the run has no {stem} stage (run it first)")
    elif (folder / stem / f"{stem}.json").is_file():
        folder = folder / stem
    check_finished(folder)
    info = read_json(folder / f"{stem}.json")
    if not isinstance(info, dict) or "plugin" not in info:
        raise ToolkitError(f"{folder / f'{stem}.json'}: no 'plugin' entry")
    module = build(kind, info["plugin"], **(info.get("params") or {}))
    path = folder / f"{stem}.safetensors"
    state = load_tensors(path)
    expected, trained = module.state_dict(), set(trained_state(module))
    untrained = trained - set(state)
    if untrained and not set(state) - set(expected):  # the plugin grew trainable parts since
        raise ToolkitError(f"{path} lacks trained weights {sorted(untrained)[:3]} of plugin "
                           f"{info['plugin']} (saved by an older version?): retrain this stage")
    check_tensors(path, state, expected, required=trained, what=f"{kind} plugin '{info['plugin']}'")
    module.load_state_dict(cast_like(state, expected), strict=False)
    check_complete(folder)
    return module.eval()


def load_run_component(run_dir: Path, key: str) -> tuple[nn.Module | None, dict | None]:
    """The trained ``tokenizer`` / ``decoder`` of a run and its plugin node (``(None, None)``
    when the run has no stage of that name; an unfinished or damaged one is an error)."""
    folder = stage_folder(run_dir, key)
    if folder is None:
        return None, None
    module = load_component(folder, key, key)
    info = read_json(folder / f"{key}.json")
    return module, {"plugin": info["plugin"], "params": info.get("params") or {}}


def load_trained(path: str | Path, key: str) -> Any:
    """The trained ``tokenizer`` or ``decoder`` of a run folder (``RUN/<key>``) or of its
    stage folder."""
    return load_component(path, key, key)


__all__ = ["trained_state", "needs_training", "save_component", "build_component",
           "load_component", "load_run_component", "load_trained"]
