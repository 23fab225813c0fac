"""The published MOSS-Speech checkpoint layout (``fnlp/MOSS-Speech``): config, tensor names,
shapes, and reading / writing its sharded safetensors folders.

A folder holds ``config.json`` (``model_type: moss_speech``, Qwen3 hyper-parameters,
``num_hidden_layers = num_shared_layers + num_modality_layers``, ``channels: 2``, the special
ids ``sosp_token_id`` / ``modality_pad_token_id`` (text channel) and ``eosp_token_id`` /
``audio_pad_token_id`` (speech channel), ``audio_vocab_size``), safetensors shards named by
``model.safetensors.index.json`` (or one ``model.safetensors``), and text tokenizer files.
Tensors (``D`` hidden, ``V`` text vocabulary, ``A`` audio vocabulary)::

    model.embed_tokens.weight [V, D]        model.audio_embed.weight [A, D]
    model.shared_block.layers.{i}.<Qwen3 layer tensor>    i < num_shared_layers
    model.text_block.layers.{j}.<...>, model.audio_block.layers.{j}.<...>   j < num_modality_layers
    model.text_norm.weight [D]              model.audio_norm.weight [D]
    text_lm_head.weight [V, D]              audio_lm_head.weight [A, D]   (real tensors, untied)

Nothing here executes code from a folder or unpickles anything: JSON and safetensors only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.io import read_json, save_tensors, write_json

MODEL_TYPE = "moss_speech"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
LAYER_TENSORS = ("input_layernorm.weight", "post_attention_layernorm.weight",
                 "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                 "self_attn.o_proj.weight", "self_attn.q_norm.weight", "self_attn.k_norm.weight",
                 "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")
"""The 11 tensors of a Qwen3 decoder layer, by their names inside the layer."""
DEFAULT_AUDIO_PAD = 512
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class MossConfig:
    """The fields of a MOSS-Speech ``config.json`` this toolkit uses (``raw``: all of it)."""

    raw: dict[str, Any]
    vocab_size: int
    audio_vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    num_shared_layers: int
    num_modality_layers: int
    sosp: int
    modality_pad: int
    eosp: int
    audio_pad: int
    eos_token_id: int | list[int] | None

    @property
    def codebook_size(self) -> int:
        """Speech codes ``0 .. eosp - 1`` (the codec's codebook)."""
        return self.eosp

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES.get(str(self.raw.get("torch_dtype", "bfloat16")), torch.bfloat16)

    def qwen3_config(self) -> dict[str, Any]:
        """A Hugging Face Qwen3 config of the text path: shared layers then the text block."""
        keep = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling",
                "max_position_embeddings", "attention_bias", "eos_token_id", "pad_token_id",
                "bos_token_id")
        out = {k: self.raw[k] for k in keep if k in self.raw}
        out.update(model_type="qwen3", tie_word_embeddings=False,
                   num_hidden_layers=self.num_shared_layers + self.num_modality_layers)
        return out


def _int(raw: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ToolkitError(f"{where}: missing integer '{key}'")
    return value


def parse_config(raw: Any, where: str) -> MossConfig:
    """Check and read a MOSS-Speech ``config.json`` dict (``where`` names it in errors)."""
    if not isinstance(raw, dict) or raw.get("model_type") != MODEL_TYPE:
        kind = raw.get("model_type") if isinstance(raw, dict) else None
        raise ToolkitError(f"{where}: model_type is {kind!r}, not '{MODEL_TYPE}' (not a MOSS-Speech folder)")
    g = {k: _int(raw, k, where) for k in ("vocab_size", "audio_vocab_size", "hidden_size",
                                          "intermediate_size", "num_attention_heads",
                                          "num_hidden_layers", "num_shared_layers",
                                          "num_modality_layers", "sosp_token_id", "eosp_token_id",
                                          "modality_pad_token_id")}
    if g["num_shared_layers"] + g["num_modality_layers"] != g["num_hidden_layers"]:
        raise ToolkitError(f"{where}: num_shared_layers + num_modality_layers != num_hidden_layers")
    if _int(raw, "channels", where, 2) != 2:
        raise ToolkitError(f"{where}: channels is {raw['channels']}, only 2 (text, speech) is known")
    heads = g["num_attention_heads"]
    kv = _int(raw, "num_key_value_heads", where, heads)
    cfg = MossConfig(raw, g["vocab_size"], g["audio_vocab_size"], g["hidden_size"],
                     g["intermediate_size"], heads, kv,
                     _int(raw, "head_dim", where, g["hidden_size"] // heads),
                     g["num_shared_layers"], g["num_modality_layers"], g["sosp_token_id"],
                     g["modality_pad_token_id"], g["eosp_token_id"],
                     _int(raw, "audio_pad_token_id", where, DEFAULT_AUDIO_PAD), raw.get("eos_token_id"))
    for name, value, limit in (("sosp_token_id", cfg.sosp, cfg.vocab_size),
                               ("modality_pad_token_id", cfg.modality_pad, cfg.vocab_size),
                               ("eosp_token_id", cfg.eosp, cfg.audio_vocab_size),
                               ("audio_pad_token_id", cfg.audio_pad, cfg.audio_vocab_size)):
        if not 0 <= value < limit:
            raise ToolkitError(f"{where}: {name} {value} is outside its vocabulary of {limit}")
    return cfg


def layer_shapes(c: MossConfig) -> dict[str, tuple[int, ...]]:
    """Shape of each :data:`LAYER_TENSORS` entry."""
    d, q, kv, f = c.hidden_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.intermediate_size
    shapes = [(d,), (d,), (q, d), (kv, d), (kv, d), (d, q), (c.head_dim,), (c.head_dim,),
              (f, d), (f, d), (d, f)]
    return dict(zip(LAYER_TENSORS, shapes))


def expected_shapes(c: MossConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the published layout -> its shape (446 names at full size)."""
    d = c.hidden_size
    out: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (c.vocab_size, d), "model.audio_embed.weight": (c.audio_vocab_size, d)}
    blocks = (("shared_block", c.num_shared_layers), ("text_block", c.num_modality_layers),
              ("audio_block", c.num_modality_layers))
    for block, n in blocks:
        for i in range(n):
            for name, shape in layer_shapes(c).items():
                out[f"model.{block}.layers.{i}.{name}"] = shape
    out.update({"model.text_norm.weight": (d,), "model.audio_norm.weight": (d,),
                "text_lm_head.weight": (c.vocab_size, d), "audio_lm_head.weight": (c.audio_vocab_size, d)})
    return out


def read_config(folder: Path) -> MossConfig:
    path = folder / "config.json"
    return parse_config(read_json(path), str(path))


def weight_map(folder: Path, names: list[str]) -> dict[str, str]:
    """Tensor name -> shard file name, from the index (or the single ``model.safetensors``)."""
    index = folder / INDEX_FILE
    if index.is_file():
        wmap = read_json(index).get("weight_map")
        if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
            raise ToolkitError(f"{index}: no 'weight_map' of tensor name -> shard file")
        return wmap
    if (folder / SINGLE_FILE).is_file():
        return {n: SINGLE_FILE for n in names}
    raise ToolkitError(f"{folder}: no {INDEX_FILE} or {SINGLE_FILE} (not a MOSS-Speech folder)")


def read_folder(folder: str | Path) -> tuple[MossConfig, dict[str, Tensor], dict[str, str]]:
    """A MOSS-Speech folder -> ``(config, tensors by published name, weight map)``.

    Every expected tensor must be named by the index, be present in its shard with the
    expected shape; errors are one line naming the file and the tensor."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolkitError(f"{folder}: no such folder")
    cfg = read_config(folder)
    shapes = expected_shapes(cfg)
    wmap = weight_map(folder, list(shapes))
    index = folder / INDEX_FILE
    for name in shapes:
        if name not in wmap:
            raise ToolkitError(f"{index}: missing tensor '{name}' (expected shape {list(shapes[name])})")
    extra = sorted(set(wmap) - set(shapes))
    if extra:
        raise ToolkitError(f"{index}: unexpected tensor '{extra[0]}' for this config")
    tensors: dict[str, Tensor] = {}
    for shard in sorted(set(wmap.values())):
        names = sorted(n for n, f in wmap.items() if f == shard)
        tensors.update(_read_shard(folder / shard, names, shapes))
    return cfg, tensors, wmap


def _read_shard(path: Path, names: list[str], shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    if not path.is_file():
        raise ToolkitError(f"{path}: shard file not found (the index puts tensor '{names[0]}' in it)")
    out, name = {}, None
    try:
        with safe_open(str(path), framework="pt") as fh:
            present = set(fh.keys())
            for name in names:
                if name not in present:
                    raise ToolkitError(f"{path}: missing tensor '{name}' (the index puts it in this shard)")
                shape = tuple(fh.get_slice(name).get_shape())
                if shape != shapes[name]:
                    raise ToolkitError(f"{path}: tensor '{name}' has shape {list(shape)}, "
                                       f"expected {list(shapes[name])}")
                out[name] = fh.get_tensor(name)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        what = f" (tensor '{name}')" if name else ""
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ToolkitError(f"{path}: not a readable safetensors file{what}: {first}") from None
    return out


_TOP = {"model.embed_tokens.weight": "embed_tokens.weight", "model.audio_embed.weight": "speech_embed.weight",
        "model.text_norm.weight": "branches.text.norm.weight",
        "model.audio_norm.weight": "branches.speech.norm.weight",
        "text_lm_head.weight": "branches.text.head.weight", "audio_lm_head.weight": "branches.speech.head.weight"}
_BLOCKS = {"shared_block": "shared", "text_block": "branches.text.layers", "audio_block": "branches.speech.layers"}
_LAYER = re.compile(r"^model\.(shared_block|text_block|audio_block)\.layers\.(\d+)\.(.+)$")
_SPLIT_LAYER = re.compile(r"^(shared|branches\.text\.layers|branches\.speech\.layers)\.(\d+)\.(.+)$")


def split_name(name: str) -> str:
    """Published tensor name -> the split model's state-dict name (``model.text_block.layers.1.x``
    -> ``branches.text.layers.1.x``; ``audio_*`` -> ``speech``)."""
    if name in _TOP:
        return _TOP[name]
    match = _LAYER.match(name)
    if match is None:
        raise ToolkitError(f"'{name}' is not a MOSS-Speech tensor name")
    return f"{_BLOCKS[match.group(1)]}.{match.group(2)}.{match.group(3)}"


def published_name(name: str) -> str:
    """The inverse of :func:`split_name`."""
    for moss, ours in _TOP.items():
        if ours == name:
            return moss
    match = _SPLIT_LAYER.match(name)
    if match is None:
        raise ToolkitError(f"split-model tensor '{name}' has no place in the MOSS-Speech layout")
    block = {v: k for k, v in _BLOCKS.items()}[match.group(1)]
    return f"model.{block}.layers.{match.group(2)}.{match.group(3)}"


def shard_plan(names: list[str], n_shards: int) -> dict[str, str]:
    """Tensor names -> ``model-0000i-of-0000n.safetensors``, in order, ``n_shards`` parts."""
    n_shards = max(1, min(n_shards, len(names)))
    per = -(-len(names) // n_shards)
    return {name: f"model-{i // per + 1:05d}-of-{n_shards:05d}.safetensors" for i, name in enumerate(names)}


def write_folder(folder: str | Path, raw_config: dict[str, Any], tensors: dict[str, Tensor],
                 wmap: dict[str, str]) -> Path:
    """Write ``config.json``, the shards of ``wmap`` and ``model.safetensors.index.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    missing = sorted(set(tensors) - set(wmap))
    if missing:
        raise ToolkitError(f"{folder}: no shard assigned to tensor '{missing[0]}'")
    for shard in sorted(set(wmap.values())):
        part = {n: tensors[n].detach().cpu().contiguous() for n in wmap if wmap[n] == shard and n in tensors}
        save_tensors(folder / shard, part, metadata={"format": "pt"})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    write_json(folder / INDEX_FILE, {"metadata": {"total_size": total},
                                     "weight_map": {n: wmap[n] for n in sorted(tensors)}})
    write_json(folder / "config.json", raw_config)
    return folder


__all__ = ["MODEL_TYPE", "INDEX_FILE", "LAYER_TENSORS", "MossConfig", "parse_config",
           "expected_shapes", "layer_shapes", "read_config", "read_folder", "write_folder",
           "shard_plan", "weight_map", "split_name", "published_name"]
