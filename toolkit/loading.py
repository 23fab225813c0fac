"""Load a trained speech-to-speech model: ``toolkit.load(path)``.

``path`` is an exported folder (written by the ``export`` stage / :func:`export_model`) or a
run folder: by default its ``export/`` when it has one, otherwise its newest LM stage plus the
run's tokenizer and decoder stages (see :func:`load` for ``stage``). This module is the one
loader of every saved thing (exports, LM stage folders, tokenizer / decoder components): each
is checked (completeness against its ``COMPLETE.json``, tensor names, shapes and dtypes against
the model built from its JSON, see :mod:`toolkit.persist.tensor_checks`) and a problem is one
:class:`ToolkitError` line naming the file and the tensor. The model asked for is never
silently replaced by another stage; only ``stage="latest"`` falls back, and says so.

An exported folder holds::

    export.json              format, plugin nodes (trunk, splitter, tokenizer, decoder), tokens
    trunk/                   the trunk as its plugin saves it (Hugging Face folder for ``llama``:
                             config.json, model.safetensors, text tokenizer files): the text side
    speech_lm.safetensors    every split-model tensor the trunk does not hold (speech side,
                             appended vocabulary rows)
    tokenizer.safetensors    speech tokenizer state
    decoder.safetensors      decoder state
    COMPLETE.json            every file above with its size

Nothing is unpickled; plugins are found through the registry by their registered names.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from torch import nn

from toolkit.errors import ToolkitError
from toolkit.formats.moss_speech import is_moss_folder, load_moss
from toolkit.io import load_tensors, read_json, save_tensors, write_json
from toolkit.persist.components import build_component, load_run_component
from toolkit.persist.split_model import load_stage_model
from toolkit.persist.tensor_checks import cast_like, check_tensors
from toolkit.run_folder import (LM_STAGES, check_complete, check_finished, latest_lm_stage, stage_folder,
                                write_marker)
from toolkit.speech_lm.bundle import SpeechLM, build_split, build_trunk, plain_params

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
EXPORT, LATEST = "export", "latest"
STAGE_CHOICES = (EXPORT, *LM_STAGES, LATEST)
"""What ``stage`` may name for a run folder (``--stage`` of ``chat`` and ``eval``)."""


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
    write_marker(folder, {"export": lm.source})
    return folder


def load_export(folder: str | Path) -> SpeechLM:
    """Load a folder written by :func:`export_model`; every file is checked (completeness
    against its marker, tensor names, shapes and dtypes) and a problem is one line."""
    folder = Path(folder)
    check_finished(folder)
    if not (folder / EXPORT_FILE).is_file():
        raise ToolkitError(f"{folder / EXPORT_FILE}: file not found (is {folder} an exported model? "
                           f"the export stage writes RUN/export)")
    info = read_json(folder / EXPORT_FILE)
    if info.get("format") != EXPORT_FORMAT:
        raise ToolkitError(f"{folder / EXPORT_FILE}: unknown export format {info.get('format')!r}")
    nodes = info["nodes"]
    trunk = build_trunk(nodes["trunk"], folder)
    split = build_split(trunk, nodes["splitter"])
    path = folder / "speech_lm.safetensors"
    state = load_tensors(path)
    held = _trunk_storage(trunk)
    expected = {k: v for k, v in split.state_dict().items() if v.untyped_storage().data_ptr() not in held}
    check_tensors(path, state, expected, what="the exported model")
    split.load_state_dict(cast_like(state, expected), strict=False)
    parts = {}
    for key in ("tokenizer", "decoder"):
        path = folder / f"{key}.safetensors"
        parts[key] = build_component(nodes[key], key, load_tensors(path), str(path)) if key in nodes else None
    check_complete(folder)
    return SpeechLM(split.eval(), trunk.eval(), parts["tokenizer"], parts["decoder"], nodes, str(folder))


def _load_lm_stage(run_dir: Path, stage: str) -> SpeechLM:
    folder = stage_folder(run_dir, stage)
    if folder is None:
        raise ToolkitError(f"{run_dir / stage}: the run has no {stage} stage")
    split, trunk, info = load_stage_model(folder)
    tokenizer, tokenizer_node = load_run_component(run_dir, "tokenizer")
    decoder, decoder_node = load_run_component(run_dir, "decoder")
    nodes = {"trunk": info["trunk"], "splitter": info["splitter"]}
    nodes.update({k: v for k, v in (("tokenizer", tokenizer_node), ("decoder", decoder_node)) if v})
    return SpeechLM(split, trunk, tokenizer, decoder, nodes, str(folder))


def _load_export_of(run_dir: Path) -> SpeechLM:
    folder = stage_folder(run_dir, EXPORT)
    if folder is None:
        raise ToolkitError(f"{run_dir / EXPORT}: the run has no export (run its export stage, "
                           f"or give an LM stage: {', '.join(LM_STAGES)})")
    return load_export(folder)


def _load_latest(run_dir: Path, candidates: tuple[str, ...],
                 notice: Callable[[str], None] | None) -> SpeechLM:
    """The first of ``candidates`` that loads; says in one line which and why."""
    skipped = []
    for stage in candidates:
        if stage_folder(run_dir, stage) is None:
            continue
        try:
            lm = _load_export_of(run_dir) if stage == EXPORT else _load_lm_stage(run_dir, stage)
        except ToolkitError as err:
            skipped.append(f"{stage} ({err})")
            continue
        why = "the newest stage of the run" if not skipped else "skipped " + "; ".join(skipped)
        (notice or _stderr)(f"note: stage latest -> {stage} ({lm.source}): {why}")
        return lm
    tried = "; ".join(skipped) if skipped else f"none of {', '.join(candidates)} exists"
    raise ToolkitError(f"{run_dir}: no stage could be loaded: {tried}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def load_run(run_dir: str | Path, stage: str | None = None,
             notice: Callable[[str], None] | None = None) -> SpeechLM:
    """The model of a run folder's ``stage``: an LM stage (sft, stage2, stage1), ``"export"``
    (``RUN/export``) or ``"latest"``. The default (None) is the newest LM stage the run has;
    an unfinished or damaged one is an error, never replaced by an older stage. Only
    ``"latest"`` falls back, to the newest LM stage that loads, and says so through ``notice``
    (default: one line on stderr)."""
    run_dir = Path(run_dir)
    if stage == LATEST:
        return _load_latest(run_dir, LM_STAGES, notice)
    if stage == EXPORT:
        return _load_export_of(run_dir)
    if stage is not None and stage not in LM_STAGES:
        raise ToolkitError(f"{run_dir}: unknown stage '{stage}' (stages: {', '.join(STAGE_CHOICES)})")
    stage = stage or latest_lm_stage(run_dir)
    if stage is None:
        raise ToolkitError(f"{run_dir}: no LM stage ({', '.join(LM_STAGES)}) to load")
    return _load_lm_stage(run_dir, stage)


def load(path: str | Path, stage: str | None = None,
         notice: Callable[[str], None] | None = None) -> SpeechLM:
    """``toolkit.load(path)``: an exported folder, or a run folder.

    For a run folder, ``stage`` is one of :data:`STAGE_CHOICES`. The default (None) is the
    run's export when it has one (``RUN/export``, finished or not), else its newest LM stage;
    the model chosen must load: a damaged, changed or unfinished one is a one-line error naming
    the file, never silently replaced by another stage. ``"latest"`` takes the first of
    export, sft, stage2, stage1 that loads and prints one line saying which and why."""
    path = Path(path)
    if not path.exists():
        raise ToolkitError(f"{path}: no such folder (give an exported model or a run folder)")
    if is_moss_folder(path):  # a released MOSS-Speech checkpoint (toolkit/formats/moss_speech.py)
        return load_moss(path)
    if (path / EXPORT_FILE).is_file():
        if stage not in (None, EXPORT, LATEST):
            raise ToolkitError(f"{path}: an exported model has no '{stage}' stage (stages are "
                               f"folders of a run: give the run folder)")
        return load_export(path)
    if not (path / "recipe.yaml").is_file():
        raise ToolkitError(f"{path}: neither an exported model ({EXPORT_FILE}) nor a run folder (recipe.yaml)")
    if stage == LATEST:
        return _load_latest(path, (EXPORT, *LM_STAGES), notice)
    if stage is not None:
        return load_run(path, stage, notice)
    try:
        return _load_export_of(path) if stage_folder(path, EXPORT) is not None else load_run(path)
    except ToolkitError as err:
        raise ToolkitError(f"{err} [the run's default model; ask for another stage, or 'latest' "
                           f"for the newest that loads]") from None


__all__ = ["SpeechLM", "load", "load_run", "load_export", "export_model", "load_stage_model",
           "STAGE_CHOICES", "EXPORT", "LATEST"]
