"""Import and export of released MOSS-Speech folders (layout: :mod:`toolkit.formats.moss_layout`).

``load_moss(folder)`` builds the registered ``moss_speech`` trunk and ``moss_split`` splitter
(by name, through the registry) into a :class:`toolkit.speech_lm.bundle.SpeechLM`; a codec folder
(``WhisperVQEncoder`` safetensors + config) given as ``codec`` becomes its speech tokenizer.
``export_moss(lm, out)`` writes the split model back in the published layout: same tensor
names, same shards as the source folder, the checkpoint's dtype, and the source's tokenizer
and code files copied (never run).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.formats.moss_layout import INDEX_FILE, MODEL_TYPE, SINGLE_FILE, published_name, write_folder
from toolkit.io import read_json
from toolkit.registry import build_node
from toolkit.speech_lm.bundle import SpeechLM, build_split, build_trunk

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def is_moss_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder whose ``config.json`` says ``model_type: moss_speech``."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    raw = read_json(config)
    return isinstance(raw, dict) and raw.get("model_type") == MODEL_TYPE


def trunk_node(folder: str | Path, dtype: str = "fp32") -> dict:
    """The recipe node of the trunk of a MOSS-Speech folder."""
    return {"plugin": "moss_speech", "params": {"checkpoint": str(Path(folder).resolve()), "dtype": dtype}}


SPLITTER_NODE = {"plugin": "moss_split", "params": {}}


def load_moss(folder: str | Path, codec: str | Path | None = None, dtype: str = "fp32"):
    """A MOSS-Speech folder -> :class:`toolkit.speech_lm.bundle.SpeechLM` (``tokenizer`` from the
    ``codec`` folder when given; no decoder: the released one is a CosyVoice2 flow model)."""
    node = trunk_node(folder, dtype)
    trunk = build_trunk(node)
    split = build_split(trunk, SPLITTER_NODE)
    nodes = {"trunk": node, "splitter": SPLITTER_NODE}
    tokenizer = None
    if codec is not None:
        tok_node = {"plugin": "whisper_vq", "params": {"checkpoint": str(Path(codec).resolve())}}
        tokenizer = build_node("tokenizer", tok_node, "tokenizer").eval()
        nodes["tokenizer"] = tok_node
    return SpeechLM(split.eval(), trunk.eval(), tokenizer, None, nodes, str(folder))


def published_tensors(model) -> dict[str, Tensor]:
    """The split model's tensors under the published names (untied heads are stored apart)."""
    return {published_name(k): v for k, v in model.state_dict().items()}


def load_published_into(model, folder: str | Path) -> None:
    """Copy the tensors of MOSS-Speech ``folder`` into a split ``model`` of the same shapes
    (a recipe's ``init_from`` naming a MOSS-Speech folder); mismatches are one-line errors."""
    import torch

    from toolkit.formats.moss_layout import read_folder, split_name

    _, tensors, wmap = read_folder(folder)
    state = model.state_dict()
    for name, t in tensors.items():
        ours = split_name(name)
        if ours not in state or tuple(state[ours].shape) != tuple(t.shape):
            raise ToolkitError(f"{Path(folder) / wmap[name]}: tensor '{name}' {list(t.shape)} does not "
                               f"fit this model ({list(state[ours].shape) if ours in state else 'no such tensor'})")
    with torch.no_grad():
        for name, t in tensors.items():
            state[split_name(name)].copy_(t)


def copy_side_files(source: Path | None, out: Path) -> None:
    """Copy the non-weight files of ``source`` (tokenizer, generation config, remote-code
    files) into ``out``; ``config.json`` and the index are written by the exporter."""
    if source is None or not Path(source).is_dir():
        return
    for item in Path(source).iterdir():
        if item.is_file() and item.name not in ("config.json", INDEX_FILE, SINGLE_FILE) \
                and not item.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(item, out / item.name)


def export_moss(lm, out: str | Path) -> Path:
    """Write ``lm`` (a model whose trunk is ``moss_speech``) as a MOSS-Speech folder."""
    trunk = lm.trunk
    moss = getattr(trunk, "moss", None)
    if moss is None:
        raise ToolkitError("export --format moss-speech needs a model imported from a MOSS-Speech "
                           f"folder (trunk plugin moss_speech); this one's trunk is {type(trunk).__name__}")
    out = Path(out)
    if out.resolve() == Path(trunk.folder).resolve():
        raise ToolkitError(f"{out}: refusing to export over the source checkpoint")
    tensors = {k: v.detach().to(moss.dtype) for k, v in published_tensors(lm.model).items()}
    missing = sorted(set(trunk.weight_map) - set(tensors))
    if missing:
        raise ToolkitError(f"model has no tensor for '{missing[0]}' of the published layout")
    write_folder(out, moss.raw, tensors, trunk.weight_map)
    copy_side_files(trunk.folder, out)
    return out


__all__ = ["is_moss_folder", "load_moss", "export_moss", "trunk_node",
           "SPLITTER_NODE", "published_tensors", "copy_side_files", "load_published_into"]
