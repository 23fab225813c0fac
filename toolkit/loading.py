"""Load a trained speech-to-speech model: ``toolkit.load(path)``.

``path`` is an exported folder (written by the ``export`` stage / :func:`export_model`) or a
run folder (its ``export/`` when complete, otherwise the latest LM stage plus the run's
tokenizer and decoder stages). An exported folder holds::

    export.json              format, plugin nodes (trunk, splitter, tokenizer, decoder), tokens
    trunk/                   the trunk as its plugin saves it (Hugging Face folder for ``llama``:
                             config.json, model.safetensors, text tokenizer files): the text side
    speech_lm.safetensors    every split-model tensor the trunk does not hold (speech side,
                             appended vocabulary rows)
    tokenizer.safetensors    speech tokenizer state
    decoder.safetensors      decoder state

Nothing is unpickled; plugins are found through the registry by their registered names.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.io import load_tensors, read_json, save_tensors, write_json

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
LM_STAGES = ("sft", "stage2", "stage1")
LM_STAGES_IN_ORDER = tuple(reversed(LM_STAGES))
"""The LM stages in the order a run trains them."""
"""LM stages in order of preference: the latest one a run has is the model."""


@dataclass
class SpeechLM:
    """A loaded speech-to-speech model: the split ``model`` with its ``trunk`` (whose modules
    it shares), the speech ``tokenizer`` and ``decoder`` (None when the run has none), and
    the plugin ``nodes`` they were built from. See :meth:`respond` for inference."""

    model: nn.Module
    trunk: nn.Module
    tokenizer: nn.Module | None
    decoder: nn.Module | None
    nodes: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def tokens(self):
        """The :class:`toolkit.speech_lm.layout.SpecialTokens` of the split model."""
        return self.model.tokens

    @property
    def text_tokenizer(self):
        return self.model.text_tokenizer

    def eval(self) -> "SpeechLM":
        for part in (self.model, self.tokenizer, self.decoder):
            if part is not None:
                part.eval()
        return self

    def respond(self, question: Any, mode: str = "s2s", **kwargs: Any):
        """Answer ``question`` (text, ``wav[T]`` at the tokenizer's rate, or an audio path) in
        ``mode``; see :func:`toolkit.evaluation.inference.respond` for the options."""
        from toolkit.evaluation.inference import respond

        return respond(self, question, mode, **kwargs)


# ---------------------------------------------------------------------------- building
def plain_params(params: Any) -> dict[str, Any]:
    """A plugin's Params dataclass -> the recipe-settable values (runtime fields dropped)."""
    if not is_dataclass(params):
        return {}
    out = {}
    for f in fields(params):
        if not f.metadata.get("toolkit_runtime"):
            out[f.name] = getattr(params, f.name)
    return out


def build_trunk(node: dict[str, Any], base: Path | None = None) -> nn.Module:
    """Build a trunk from ``{plugin, params}``; a relative ``checkpoint`` is taken from ``base``."""
    from toolkit.registry import build_node

    node = {"plugin": node["plugin"], "params": dict(node.get("params") or {})}
    ckpt = node["params"].get("checkpoint")
    if base is not None and isinstance(ckpt, str) and not Path(ckpt).is_absolute() \
            and (base / ckpt).exists():
        node["params"]["checkpoint"] = str(base / ckpt)
    return build_node("trunk", node, "trunk")


def build_split(trunk: nn.Module, node: dict[str, Any], speech_vocab_size: int | None = None) -> nn.Module:
    """The splitter of ``node`` applied to ``trunk`` (``speech_vocab_size`` fills a node without it)."""
    from toolkit.registry import build_node

    params = dict(node.get("params") or {})
    if speech_vocab_size is not None:
        params.setdefault("speech_vocab_size", int(speech_vocab_size))
    return build_node("splitter", {"plugin": node["plugin"], "params": params}, "splitter", trunk=trunk)


def load_stage_model(stage_dir: str | Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """A split model saved by an LM stage (``model.json`` + ``model.safetensors``)
    -> ``(split_model, trunk, info)``."""
    from toolkit.speech_lm.persist import STATE_FILE, load_into

    stage_dir = Path(stage_dir)
    info = read_json(stage_dir / STATE_FILE)
    for key in ("trunk", "splitter", "tokens"):
        if not isinstance(info.get(key), dict):
            raise ToolkitError(f"{stage_dir / STATE_FILE}: no '{key}' entry")
    trunk = build_trunk(info["trunk"])
    split = build_split(trunk, info["splitter"], info["tokens"]["speech_vocab_size"])
    load_into(split, stage_dir)
    return split.eval(), trunk.eval(), info


def build_component(node: dict[str, Any], key: str, state: dict[str, torch.Tensor] | None,
                    where: str) -> nn.Module:
    """Build the ``tokenizer`` / ``decoder`` plugin of ``node`` and load ``state`` into it."""
    from toolkit.registry import KIND_OF_KEY, build_node

    module = build_node(KIND_OF_KEY[key], node, key)
    if state is not None:
        expected = set(module.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            what = f"missing tensor '{missing[0]}'" if missing else f"unexpected tensor '{unexpected[0]}'"
            raise ToolkitError(f"{where}: {what} for {key} plugin '{node['plugin']}'")
        module.load_state_dict(state, strict=True)
    return module.eval()


# ---------------------------------------------------------------------------- export
def _trunk_storage(trunk: nn.Module) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in trunk.state_dict().values()}


def export_model(lm: SpeechLM, folder: str | Path) -> Path:
    """Write ``lm`` as one self-contained folder (see the module docstring); returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not hasattr(lm.trunk, "save_pretrained"):
        raise ToolkitError(f"trunk {type(lm.trunk).__name__} has no save_pretrained(); cannot export")
    if (folder / "trunk").exists():
        shutil.rmtree(folder / "trunk")
    lm.trunk.save_pretrained(folder / "trunk")
    held = _trunk_storage(lm.trunk)
    own = {k: v.detach().cpu() for k, v in lm.model.state_dict().items()
           if v.untyped_storage().data_ptr() not in held}
    save_tensors(folder / "speech_lm.safetensors", own, metadata={"format": "pt"})
    nodes = dict(lm.nodes)
    trunk_params = {k: v for k, v in (nodes["trunk"].get("params") or {}).items()
                    if k not in ("checkpoint", "config", "seed")}
    nodes["trunk"] = {"plugin": nodes["trunk"]["plugin"], "params": {**trunk_params, "checkpoint": "trunk"}}
    nodes["splitter"] = {"plugin": nodes["splitter"]["plugin"],
                         "params": plain_params(getattr(lm.model, "params", None))
                         or dict(nodes["splitter"].get("params") or {})}
    for key, part in (("tokenizer", lm.tokenizer), ("decoder", lm.decoder)):
        if part is None:
            nodes.pop(key, None)
            continue
        save_tensors(folder / f"{key}.safetensors", {k: v.detach().cpu() for k, v in part.state_dict().items()})
    write_json(folder / EXPORT_FILE, {"format": EXPORT_FORMAT, "nodes": nodes,
                                      "tokens": lm.tokens.to_dict(), "source": lm.source})
    return folder


def load_export(folder: str | Path) -> SpeechLM:
    """Load a folder written by :func:`export_model`."""
    folder = Path(folder)
    info = read_json(folder / EXPORT_FILE)
    if info.get("format") != EXPORT_FORMAT:
        raise ToolkitError(f"{folder / EXPORT_FILE}: unknown export format {info.get('format')!r}")
    nodes = info["nodes"]
    trunk = build_trunk(nodes["trunk"], folder)
    split = build_split(trunk, nodes["splitter"])
    state = load_tensors(folder / "speech_lm.safetensors")
    held = _trunk_storage(trunk)
    wanted = {k for k, v in split.state_dict().items() if v.untyped_storage().data_ptr() not in held}
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or unexpected:
        what = f"missing tensor '{missing[0]}'" if missing else f"unexpected tensor '{unexpected[0]}'"
        raise ToolkitError(f"{folder / 'speech_lm.safetensors'}: {what}")
    split.load_state_dict(state, strict=False)
    parts = {}
    for key in ("tokenizer", "decoder"):
        path = folder / f"{key}.safetensors"
        parts[key] = build_component(nodes[key], key, load_tensors(path), str(path)) if key in nodes else None
    return SpeechLM(split.eval(), trunk.eval(), parts["tokenizer"], parts["decoder"], nodes, str(folder))


# ---------------------------------------------------------------------------- run folders
def latest_lm_stage(run_dir: Path) -> str | None:
    from toolkit.runner import is_complete

    return next((s for s in LM_STAGES if is_complete(run_dir / s)), None)


def load_run_component(run_dir: Path, key: str) -> tuple[nn.Module | None, dict | None]:
    """The trained ``tokenizer`` / ``decoder`` of a run and its plugin node (``(None, None)``
    when the run has no complete stage of that name)."""
    import importlib

    from toolkit.runner import is_complete

    stage_dir = run_dir / key
    if not is_complete(stage_dir):
        return None, None
    module = importlib.import_module(f"toolkit.stages.{key}").load_trained(stage_dir)
    info = read_json(stage_dir / f"{key}.json")
    return module, {"plugin": info["plugin"], "params": info.get("params") or {}}


def load_run(run_dir: str | Path, stage: str | None = None) -> SpeechLM:
    """The model of a run folder: ``stage`` (default: the latest of sft, stage2, stage1)."""
    run_dir = Path(run_dir)
    stage = stage or latest_lm_stage(run_dir)
    if stage is None:
        raise ToolkitError(f"{run_dir}: no complete LM stage ({', '.join(LM_STAGES)}) to load")
    split, trunk, info = load_stage_model(run_dir / stage)
    tokenizer, tokenizer_node = load_run_component(run_dir, "tokenizer")
    decoder, decoder_node = load_run_component(run_dir, "decoder")
    nodes = {"trunk": info["trunk"], "splitter": info["splitter"]}
    nodes.update({k: v for k, v in (("tokenizer", tokenizer_node), ("decoder", decoder_node)) if v})
    return SpeechLM(split, trunk, tokenizer, decoder, nodes, str(run_dir / stage))


def load(path: str | Path, stage: str | None = None) -> SpeechLM:
    """``toolkit.load(path)``: an exported folder, or a run folder (its complete ``export/``
    when there is one and no ``stage`` is asked for, else the latest LM stage)."""
    from toolkit.runner import is_complete

    path = Path(path)
    if not path.exists():
        raise ToolkitError(f"{path}: no such folder (give an exported model or a run folder)")
    if (path / EXPORT_FILE).is_file():
        return load_export(path)
    if stage is None and is_complete(path / "export") and (path / "export" / EXPORT_FILE).is_file():
        return load_export(path / "export")
    if (path / "recipe.yaml").is_file():
        return load_run(path, stage)
    raise ToolkitError(f"{path}: neither an exported model ({EXPORT_FILE}) nor a run folder (recipe.yaml)")


__all__ = ["SpeechLM", "load", "load_run", "load_export", "export_model", "load_stage_model",
           "build_trunk", "build_split", "build_component", "latest_lm_stage", "LM_STAGES",
           "LM_STAGES_IN_ORDER"]
