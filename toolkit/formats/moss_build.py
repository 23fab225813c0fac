"""Build MOSS-Speech checkpoints in the published layout: tiny ones for tests, or a random
model of any size (the real one is :data:`REAL_SIZE`) for measurements.

``build_checkpoint(folder)`` writes ``config.json`` (every field the published config uses,
small sizes), bf16 safetensors shards with ``model.safetensors.index.json``, and an offline
byte-level BPE text tokenizer (``tokenizer.json``, ``tokenizer_config.json``) whose special
tokens sit at the config's ids: ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (end
of turn), ``<|object_ref_start|>`` (``sosp``) and ``<|empty|>`` (``modality_pad``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from toolkit.formats.moss_layout import expected_shapes, parse_config, shard_plan, write_folder
from toolkit.io import write_json

TINY: dict[str, Any] = {
    "architectures": ["MossSpeechForCausalLM"], "model_type": "moss_speech",
    "auto_map": {"AutoConfig": "configuration_moss_speech.MossSpeechConfig",
                 "AutoModelForCausalLM": "modeling_moss_speech.MossSpeechForCausalLM"},
    "vocab_size": 320, "audio_vocab_size": 80, "hidden_size": 64, "intermediate_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "num_hidden_layers": 4, "num_shared_layers": 2, "num_modality_layers": 2, "channels": 2,
    "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "rope_scaling": None, "attention_bias": False,
    "attention_dropout": 0.0, "tie_word_embeddings": False, "use_cache": True,
    "use_sliding_window": False, "sliding_window": None, "initializer_range": 0.02,
    "sosp_token_id": 259, "modality_pad_token_id": 300, "eosp_token_id": 64,
    "audio_pad_token_id": 5, "bos_token_id": 256, "eos_token_id": 258, "pad_token_id": 256,
    "torch_dtype": "bfloat16", "transformers_version": "4.57.0.dev0",
}
"""The tiny config: published field names and roles; ids scaled down (``eosp`` = codebook
size 64, ``audio_pad`` 5 inside the code range as 512 is in the real one, audio rows past
``eosp + 1`` that the model never samples)."""

REAL_SIZE: dict[str, Any] = {**TINY, "vocab_size": 151680, "audio_vocab_size": 16512,
                             "hidden_size": 4096, "intermediate_size": 12288,
                             "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                             "num_hidden_layers": 36, "num_shared_layers": 32,
                             "num_modality_layers": 4, "max_position_embeddings": 40960,
                             "sosp_token_id": 151646, "modality_pad_token_id": 151667,
                             "eosp_token_id": 16384, "audio_pad_token_id": 512,
                             "bos_token_id": None, "eos_token_id": 151645, "pad_token_id": 151643}
"""The published sizes and ids (``fnlp/MOSS-Speech``)."""


def random_tensors(raw_config: dict[str, Any], seed: int = 0,
                   dtype: torch.dtype = torch.bfloat16) -> dict[str, Tensor]:
    """Random weights under the published names: matrices N(0, 0.02), norm weights
    ``1 + N(0, 0.1)`` (so a swapped norm changes the output)."""
    cfg = parse_config(raw_config, "config")
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in expected_shapes(cfg).items():
        if len(shape) == 1:
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = 0.02 * torch.randn(shape, generator=gen)
        out[name] = t.to(dtype)
    return out


def text_tokenizer_files(folder: Path, raw_config: dict[str, Any]) -> None:
    """An offline byte-level BPE tokenizer (the 256 byte symbols, no merges) with the special
    tokens at the config's ids, plus ``tokenizer_config.json``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tok = Tokenizer(models.BPE({ch: i for i, ch in enumerate(alphabet)}, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = {raw_config["pad_token_id"]: "<|endoftext|>", raw_config["eos_token_id"] - 1: "<|im_start|>",
                raw_config["eos_token_id"]: "<|im_end|>", raw_config["sosp_token_id"]: "<|object_ref_start|>",
                raw_config["modality_pad_token_id"]: "<|empty|>"}
    for idx in range(len(alphabet), max(specials) + 1):
        content = specials.get(idx, f"<|reserved_{idx}|>")
        tok.add_special_tokens([AddedToken(content, special=True, normalized=False)])
        assert tok.token_to_id(content) == idx
    tok.save(str(folder / "tokenizer.json"))
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "bos_token": None, "add_bos_token": False, "model_max_length": raw_config["max_position_embeddings"]})


def build_checkpoint(folder: str | Path, config: dict[str, Any] | None = None, seed: int = 0,
                     n_shards: int = 2, tokenizer: bool = True,
                     dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write a MOSS-Speech folder in the published layout (default: :data:`TINY`, overrides
    from ``config``) with random weights; returns the folder."""
    folder = Path(folder)
    raw = {**TINY, **(config or {})}
    raw["num_hidden_layers"] = raw["num_shared_layers"] + raw["num_modality_layers"]
    raw["torch_dtype"] = {torch.bfloat16: "bfloat16", torch.float32: "float32"}.get(dtype, "bfloat16")
    tensors = random_tensors(raw, seed, dtype)
    write_folder(folder, raw, tensors, shard_plan(list(tensors), n_shards))
    if tokenizer:
        text_tokenizer_files(folder, raw)
    return folder


__all__ = ["TINY", "REAL_SIZE", "build_checkpoint", "random_tensors", "text_tokenizer_files"]
