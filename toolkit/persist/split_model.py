"""Saving and loading an LM stage's model (what the next stage, eval and export read).

A stage folder holds:

- ``model.safetensors``: the split model's tensors (state-dict names: ``embed_tokens.*``,
  ``speech_embed.*``, ``shared.{i}.*``, ``branches.{text,speech}.*``). ``contents`` in the JSON
  says which: ``"speech_side"`` (stage I: only the speech embedding and speech branch, plus
  ``appended.*`` rows when ``sosp``/``modality_pad`` were added to the text vocabulary; the
  text side is the trunk's, unchanged) or ``"full"`` (every tensor; a text head tied to the
  embedding is stored once).
- ``model.json``: ``format``, ``stage``, ``contents``, the recipe's ``trunk`` and ``splitter``
  nodes (registered plugin names and plain params), the special ``tokens``, ``tied_head``
  and the stage's final ``metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.io import load_tensors, read_json, save_tensors, write_json
from toolkit.persist.tensor_checks import cast_like, check_tensors
from toolkit.run_folder import check_complete, check_finished
from toolkit.speech_lm.bundle import build_split, build_trunk
from toolkit.speech_lm.layout import SpecialTokens

MODEL_FILE = "model.safetensors"
STATE_FILE = "model.json"
FORMAT = 1
TIED = "branches.text.head.weight"


def _tied(model: nn.Module) -> bool:
    return model.branches["text"].head.weight is model.embed_tokens.weight


def save_split_model(model: nn.Module, folder: str | Path, *, stage: str, contents: str,
                     trunk_node: Any, splitter_node: Any, metrics: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``model.json`` into ``folder``; returns the JSON path."""
    folder = Path(folder)
    state = model.state_dict()
    if contents == "speech_side":
        names = {n for n, _ in model.parameter_groups()["speech"]}
        tensors = {k: v for k, v in state.items() if k in names}
        rows = list(model.tokens.appended_text_rows)
        if rows:
            tensors["appended.embed_tokens"] = model.embed_tokens.weight.detach()[rows]
            tensors["appended.text_head"] = model.branches["text"].head.weight.detach()[rows]
    elif contents == "full":
        tensors = {k: v for k, v in state.items() if not (k == TIED and _tied(model))}
    else:
        raise ValueError(f"contents must be speech_side or full, not {contents}")
    save_tensors(folder / MODEL_FILE, {k: v.detach().cpu() for k, v in tensors.items()})
    return write_json(folder / STATE_FILE, {
        "format": FORMAT, "stage": stage, "contents": contents, "trunk": trunk_node,
        "splitter": splitter_node, "tokens": model.tokens.to_dict(), "tied_head": _tied(model),
        "split_at": model.split_at, "metrics": metrics or {}})


def load_into(model: nn.Module, folder: str | Path) -> dict[str, Any]:
    """Load a saved stage model into a freshly split ``model`` (same trunk and splitter
    params); returns the JSON state. Every tensor is checked against the model (names,
    shapes, dtypes; all of the saved ``contents`` present) before any is loaded: a mismatch is
    one line naming the file, the tensor, the expected and the found."""
    folder = Path(folder)
    info = read_json(folder / STATE_FILE)
    if info.get("format") != FORMAT:
        raise ToolkitError(f"{folder / STATE_FILE}: unknown format {info.get('format')!r}")
    saved = SpecialTokens.from_dict(info["tokens"])
    if saved != model.tokens:
        raise ToolkitError(f"{folder}: saved special tokens {saved} differ from this model's "
                           f"{model.tokens} (different trunk or speech vocabulary?)")
    path = folder / MODEL_FILE
    tensors = load_tensors(path)
    appended = {k: tensors.pop(k) for k in list(tensors) if k.startswith("appended.")}
    state = model.state_dict()
    if info.get("contents") == "full":
        required = set(state) - ({TIED} if _tied(model) else set())
    elif info.get("contents") == "speech_side":
        required = {n for n, _ in model.parameter_groups()["speech"]} & set(state)
    else:
        raise ToolkitError(f"{folder / STATE_FILE}: 'contents' must be full or speech_side, "
                           f"not {info.get('contents')!r}")
    check_tensors(path, tensors, state, required, what="this model")
    rows = list(model.tokens.appended_text_rows)
    if appended:
        expected = {"appended.embed_tokens": model.embed_tokens.weight.detach()[rows],
                    "appended.text_head": model.branches["text"].head.weight.detach()[rows]}
        check_tensors(path, appended, expected, set(), what="this model's appended text rows")
    tensors = cast_like(tensors, state)
    model.load_state_dict(tensors, strict=False)
    with torch.no_grad():
        if "appended.embed_tokens" in appended:
            model.embed_tokens.weight[rows] = appended["appended.embed_tokens"].to(model.embed_tokens.weight)
        if "appended.text_head" in appended:
            head = model.branches["text"].head.weight
            head[rows] = appended["appended.text_head"].to(head)
    return info


def load_stage_model(stage_dir: str | Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """A split model saved by an LM stage (``model.json`` + ``model.safetensors``)
    -> ``(split_model, trunk, info)``; an unfinished, damaged or changed folder is an error."""
    stage_dir = Path(stage_dir)
    check_finished(stage_dir)
    info = read_json(stage_dir / STATE_FILE)
    for key in ("trunk", "splitter", "tokens"):
        if not isinstance(info.get(key), dict):
            raise ToolkitError(f"{stage_dir / STATE_FILE}: no '{key}' entry")
    trunk = build_trunk(info["trunk"])
    split = build_split(trunk, info["splitter"], info["tokens"]["speech_vocab_size"])
    load_into(split, stage_dir)
    check_complete(stage_dir)
    return split.eval(), trunk.eval(), info


__all__ = ["MODEL_FILE", "STATE_FILE", "save_split_model", "load_into", "load_stage_model"]
