"""The Llama-family decoder block: pre-norm GQA attention with RoPE, then a SwiGLU MLP.

Covers Hugging Face's ``llama``/``mistral`` (optional biases), ``qwen2`` (q/k/v bias) and
``qwen3`` (per-head RMSNorm on q and k). Submodule names follow Hugging Face so state dicts map
one to one (``self_attn.q_proj``, ``mlp.gate_proj``, ``input_layernorm``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from toolkit import kernels
from toolkit.nn.cache import LayerKV
from toolkit.nn.context import AttentionContext
from toolkit.nn.norm import RMSNorm
from toolkit.nn.rope import apply_rotary


@dataclass
class BlockConfig:
    """Shape and options of one :class:`DecoderBlock`."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rms_eps: float = 1e-6
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False


class Attention(nn.Module):
    """Projections of grouped-query attention (the attention itself is ``toolkit.kernels``)."""

    def __init__(self, c: BlockConfig) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=c.o_bias)
        self.q_norm = RMSNorm(c.head_dim, c.rms_eps) if c.qk_norm else None
        self.k_norm = RMSNorm(c.head_dim, c.rms_eps) if c.qk_norm else None


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``: ``x[..., D]`` -> ``[..., D]``."""

    def __init__(self, c: BlockConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=c.mlp_bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``.

    ``forward(x[B,L,D], ctx, kv=None) -> [B,L,D]`` is exactly these public halves, which a
    caller may run separately (e.g. to fuse several blocks' attention into one kernel call)::

        q, k, v = block.attn_inputs(x, ctx)       # q[B,H,L,d], k/v[B,Hkv,L,d] (RoPE applied)
        if kv is not None:
            k, v = kv.update(k, v)                 # k/v[B,Hkv,S,d]
        a = toolkit.kernels.attention(q, k, v, key_padding=ctx.key_padding)
        x = block.attn_outputs(x, a)               # o_proj + residual, then MLP + residual
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        self.block_config = config
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_eps)
        self.mlp = SwiGLU(config)

    def attn_inputs(self, x: Tensor, ctx: AttentionContext) -> tuple[Tensor, Tensor, Tensor]:
        """``x[B,L,D]`` -> ``q[B,H,L,d]``, ``k[B,Hkv,L,d]``, ``v[B,Hkv,L,d]``: norm,
        projections, optional q/k RMSNorm, then RoPE from ``ctx.rope``."""
        attn = self.self_attn
        h = self.input_layernorm(x)
        q = rearrange(attn.q_proj(h), "b l (h d) -> b l h d", d=attn.head_dim)
        k = rearrange(attn.k_proj(h), "b l (h d) -> b l h d", d=attn.head_dim)
        v = rearrange(attn.v_proj(h), "b l (h d) -> b h l d", d=attn.head_dim)
        if attn.q_norm is not None:
            q, k = attn.q_norm(q), attn.k_norm(k)
        cos, sin = ctx.rope
        q = apply_rotary(q.transpose(1, 2), cos, sin)
        k = apply_rotary(k.transpose(1, 2), cos, sin)
        return q, k, v

    def attn_outputs(self, x: Tensor, a: Tensor) -> Tensor:
        """Residual updates from the attention output ``a[B,H,L,d]``: ``x[B,L,D]`` -> ``[B,L,D]``."""
        x = x + self.self_attn.o_proj(rearrange(a, "b h l d -> b l (h d)"))
        return x + self.mlp(self.post_attention_layernorm(x))

    def forward(self, x: Tensor, ctx: AttentionContext, kv: LayerKV | None = None) -> Tensor:
        q, k, v = self.attn_inputs(x, ctx)
        if kv is not None:
            k, v = kv.update(k, v)
        a = kernels.attention(q, k, v, key_padding=ctx.key_padding)
        return self.attn_outputs(x, a)


__all__ = ["BlockConfig", "Attention", "SwiGLU", "DecoderBlock"]
