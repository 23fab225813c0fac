"""GGUF checkpoints (llama.cpp format): hyperparameters, dequantised weights and the tokenizer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from toolkit.errors import ToolkitError

from plugins.llama.config import LlamaConfig, Loaded
from plugins.llama.tokenizer import HFTextTokenizer

ARCHES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3"}
"""GGUF ``general.architecture`` -> our ``model_type``."""

LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias", "attn_output.bias": "self_attn.o_proj.bias",
    "attn_q_norm.weight": "self_attn.q_norm.weight", "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
TOP_NAMES = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight",
             "output.weight": "lm_head.weight"}
SKIPPED = {"rope_freqs.weight"}
"""llama.cpp tensors with no weight of ours (RoPE factors are recomputed from the config)."""

_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


def _reader(path: Path):
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError/IndexError/struct errors on damage
        raise ToolkitError(f"{path}: not a readable GGUF file ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'truncated?'})") from None


def _meta(reader) -> dict[str, Any]:
    out = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
                   "tokenizer.ggml.scores"):
            out[key] = field.contents()
            continue
        try:
            out[key] = field.contents()
        except Exception:  # unusual value types: skip, we only read known keys
            continue
    return out


def gguf_config(meta: dict[str, Any], tensor_names: set[str], path: Path) -> LlamaConfig:
    """Our :class:`LlamaConfig` from a GGUF's ``{arch}.*`` metadata."""
    arch = meta.get("general.architecture")
    if arch not in ARCHES:
        raise ToolkitError(f"{path}: unsupported GGUF architecture '{arch}'; supported: "
                           f"{', '.join(ARCHES)}")

    def get(key: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is None:
            raise ToolkitError(f"{path}: missing GGUF metadata '{arch}.{key}'")
        return value

    hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
    kv_heads = get("attention.head_count_kv", heads)
    vocab = meta.get(f"{arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or [])
    scaling = None
    if meta.get(f"{arch}.rope.scaling.type") not in (None, "none"):
        scaling = {"rope_type": meta[f"{arch}.rope.scaling.type"],
                   "factor": float(meta.get(f"{arch}.rope.scaling.factor", 1.0)),
                   "original_max_position_embeddings":
                       meta.get(f"{arch}.rope.scaling.original_context_length")}
    kind = ARCHES[arch]
    return LlamaConfig(
        vocab_size=int(vocab), hidden_size=hidden, num_layers=int(get("block_count")),
        num_heads=heads, num_kv_heads=int(kv_heads),
        intermediate_size=int(get("feed_forward_length")),
        head_dim=int(meta.get(f"{arch}.attention.key_length") or hidden // heads),
        model_type=kind, rms_eps=float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(get("rope.freq_base", 10000.0)), rope_scaling=scaling,
        max_position=int(get("context_length", 2048)),
        tie_embeddings="output.weight" not in tensor_names,
        qkv_bias="blk.0.attn_q.bias" in tensor_names,
        o_bias="blk.0.attn_output.bias" in tensor_names,
        qk_norm="blk.0.attn_q_norm.weight" in tensor_names,
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
    )


def our_name(gguf_name: str, path: Path) -> str | None:
    """llama.cpp tensor name -> ours (None for tensors we do not use)."""
    if gguf_name in TOP_NAMES:
        return TOP_NAMES[gguf_name]
    if gguf_name in SKIPPED:
        return None
    match = _BLOCK.match(gguf_name)
    if match and match.group(2) in LAYER_NAMES:
        return f"layers.{match.group(1)}.{LAYER_NAMES[match.group(2)]}"
    raise ToolkitError(f"{path}: unknown GGUF tensor '{gguf_name}'")


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of the rotary halves in Q/K rows (llama architecture)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path: Path):
    """Read a GGUF file into a :class:`plugins.llama.config.Loaded` (weights dequantised to fp32)."""
    from gguf.quants import dequantize

    reader = _reader(path)
    meta = _meta(reader)
    arch = gguf_config(meta, {t.name for t in reader.tensors}, path)
    tensors: dict[str, Tensor] = {}
    int4: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    for t in reader.tensors:
        name = our_name(t.name, path)
        if name is None:
            continue
        try:
            w = dequantize(t.data, t.tensor_type)
        except Exception as err:
            raise ToolkitError(f"{path}: cannot read tensor '{t.name}' "
                               f"({t.tensor_type.name}: {err})") from None
        w = np.asarray(w, dtype=np.float32).reshape([int(n) for n in reversed(t.shape)])
        permuted = arch.model_type in ("llama", "mistral") and t.name.endswith(
            ("attn_q.weight", "attn_k.weight"))
        heads = arch.num_heads if "attn_q" in t.name else arch.num_kv_heads
        if permuted:
            w = unpermute(w, heads)
        blocks = int4_blocks(t)
        if blocks is not None:
            int4[name] = tuple(torch.from_numpy(unpermute(b, heads) if permuted else b)
                               for b in blocks)
        if not w.flags.writeable or not w.flags.c_contiguous:  # unquantised tensors are memmapped
            w = np.array(w, copy=True, order="C")
        tensors[name] = torch.from_numpy(w)
    return Loaded(arch, tensors, gguf_tokenizer(meta, path), f"{path}", int4)


def int4_blocks(t) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """For a ``Q4_0``/``Q4_1`` tensor: ``codes[out,in]`` uint8 in 0..15 and ``scale, zero
    [out,in/32]`` fp32 with ``weight == scale * (codes - 8) + zero``; None for other types."""
    kind = t.tensor_type.name
    if kind not in ("Q4_0", "Q4_1"):
        return None
    rows = int(t.shape[1]) if len(t.shape) > 1 else 1
    raw = np.asarray(t.data, dtype=np.uint8).reshape(rows, -1, 20 if kind == "Q4_1" else 18)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    if kind == "Q4_1":
        m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        qs = raw[..., 4:]
        zero = m + 8 * d
    else:
        qs = raw[..., 2:]
        zero = np.zeros_like(d)
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).reshape(rows, -1)
    return np.ascontiguousarray(codes), d, zero


def gguf_tokenizer(meta: dict[str, Any], path: Path) -> HFTextTokenizer | None:
    """The byte-level BPE tokenizer stored in a GGUF (``tokenizer.ggml.model == gpt2``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    model = meta.get("tokenizer.ggml.model")
    if model is None:
        return None
    if model != "gpt2":
        raise ToolkitError(f"{path}: GGUF tokenizer model '{model}' is not supported (only "
                           f"byte-level BPE, 'gpt2')")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges") or []]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges,
                               fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pre = meta.get("tokenizer.ggml.pre")
    if pre in SPLITS:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(SPLITS[pre]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif pre == "smollm":  # llama.cpp: single digits, then the GPT-2 split
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, kind in zip(tokens, types) if kind == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, kind in zip(tokens, types) if kind == 4])

    def token(key: str) -> str | None:
        idx = meta.get(key)
        return tokens[idx] if idx is not None and 0 <= idx < len(tokens) else None

    eos = meta.get("tokenizer.ggml.eos_token_id")
    eot = meta.get("tokenizer.ggml.eot_token_id")
    return HFTextTokenizer(tok, meta.get("tokenizer.chat_template"),
                           token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"),
                           tuple(i for i in (eos, eot) if i is not None),
                           meta.get("tokenizer.ggml.padding_token_id"))


_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {"llama-bpe": _LLAMA3, "llama3": _LLAMA3, "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2}
"""Pre-tokenizer split patterns of llama.cpp's ``tokenizer.ggml.pre`` values."""
