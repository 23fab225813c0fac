"""Architecture settings of a Llama-family checkpoint, read from a Hugging Face ``config.json``,
and :class:`Loaded`, what reading a checkpoint gives."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

from toolkit.contracts import TextTokenizer
from toolkit.errors import ToolkitError, suggest
from toolkit.nn import BlockConfig

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")

ALIASES = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
           "num_kv_heads": "num_key_value_heads", "max_position": "max_position_embeddings",
           "rms_eps": "rms_norm_eps", "tie_embeddings": "tie_word_embeddings"}
"""Short names accepted in a ``config`` dict, and the Hugging Face key each stands for."""


@dataclass
class LlamaConfig:
    """Everything needed to build the network (Hugging Face names in :meth:`to_hf`)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int
    model_type: str = "llama"
    rms_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_position: int = 2048
    tie_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def block(self) -> BlockConfig:
        return BlockConfig(self.hidden_size, self.num_heads, self.num_kv_heads, self.head_dim,
                           self.intermediate_size, self.rms_eps, self.qkv_bias, self.o_bias,
                           self.mlp_bias, self.qk_norm)

    def to_hf(self) -> dict[str, Any]:
        """A ``config.json`` dict that ``transformers`` reads back as the same model."""
        out = {
            "architectures": [_ARCH[self.model_type]], "model_type": self.model_type,
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers, "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads, "intermediate_size": self.intermediate_size,
            "head_dim": self.head_dim, "rms_norm_eps": self.rms_eps, "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling, "max_position_embeddings": self.max_position,
            "tie_word_embeddings": self.tie_embeddings, "hidden_act": "silu",
            "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id, "torch_dtype": "float32",
        }
        if self.model_type in ("llama", "qwen3"):
            out["attention_bias"] = self.o_bias
        if self.model_type == "llama":
            out["mlp_bias"] = self.mlp_bias
        return {**self.extra, **out}

    def summary(self) -> dict[str, Any]:
        return asdict(self)


_ARCH = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
         "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def parse_config(raw: dict[str, Any], where: str = "config") -> LlamaConfig:
    """Read a Hugging Face config dict (short aliases allowed, see :data:`ALIASES`)."""
    hf = {ALIASES.get(k, k): v for k, v in raw.items()}
    kind = hf.get("model_type", "llama")
    if kind not in SUPPORTED:
        raise ToolkitError(f"{where}: unsupported model_type '{kind}'; supported: "
                           f"{', '.join(SUPPORTED)}{suggest(kind, SUPPORTED)}")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size"):
        if not isinstance(hf.get(key), int):
            raise ToolkitError(f"{where}: missing integer '{key}'")
    heads = hf["num_attention_heads"]
    kv_heads = hf.get("num_key_value_heads") or heads
    if heads % kv_heads:
        raise ToolkitError(f"{where}: num_attention_heads {heads} is not a multiple of "
                           f"num_key_value_heads {kv_heads}")
    rope = hf.get("rope_scaling") or hf.get("rope_parameters")
    theta = hf.get("rope_theta") or (rope or {}).get("rope_theta") or 10000.0
    if rope and rope.get("rope_type", rope.get("type", "default")) == "default":
        rope = None
    bias = bool(hf.get("attention_bias", False))
    return LlamaConfig(
        vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"], num_heads=heads, num_kv_heads=kv_heads,
        intermediate_size=hf["intermediate_size"],
        head_dim=hf.get("head_dim") or hf["hidden_size"] // heads, model_type=kind,
        rms_eps=float(hf.get("rms_norm_eps", 1e-6)), rope_theta=float(theta),
        rope_scaling=dict(rope) if rope else None,
        max_position=int(hf.get("max_position_embeddings", 2048)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=True if kind == "qwen2" else bias, o_bias=bias if kind != "qwen2" else False,
        mlp_bias=bool(hf.get("mlp_bias", False)), qk_norm=kind == "qwen3",
        bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"),
        extra={k: v for k, v in hf.items() if k in ("sliding_window", "use_sliding_window")},
    )


@dataclass
class Loaded:
    """What a checkpoint reader returns (:mod:`plugins.llama.checkpoint`, :mod:`plugins.llama.gguf_io`)."""

    arch: LlamaConfig
    tensors: dict[str, Tensor]
    """Weights under our names (Hugging Face names without the ``model.`` prefix)."""
    tokenizer: TextTokenizer | None
    source: str
    int4: dict[str, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict)
    """4-bit block codes of GGUF Q4 weights: name -> (codes, scale, zero), see toolkit.nn.Int4Linear."""
