"""MOSS-Speech's forward written from the published contract alone (no toolkit model code):
per-position embedding choice, shared Qwen3 layers, both tails on the shared output with
their own norms and heads, speech logits masked from ``eosp + 1`` up."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x: Tensor, theta: float) -> Tensor:
    """``x[B, H, L, d]`` rotated by positions 0..L-1 (rotate-half convention)."""
    d, n = x.shape[-1], x.shape[-2]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
    cos, sin = torch.cat([ang, ang], -1).cos().float(), torch.cat([ang, ang], -1).sin().float()
    half = torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * cos + half * sin


def layer(x: Tensor, t: dict[str, Tensor], p: str, c: dict) -> Tensor:
    """One Qwen3 decoder layer ``p`` (prefix of its published names) on ``x[B, L, D]``."""
    B, L, _ = x.shape
    hd, H, KV, eps = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"], c["rms_norm_eps"]
    h = rms(x, t[p + "input_layernorm.weight"], eps)
    q = (h @ t[p + "self_attn.q_proj.weight"].T).view(B, L, H, hd)
    k = (h @ t[p + "self_attn.k_proj.weight"].T).view(B, L, KV, hd)
    v = (h @ t[p + "self_attn.v_proj.weight"].T).view(B, L, KV, hd).transpose(1, 2)
    q = rope(rms(q, t[p + "self_attn.q_norm.weight"], eps).transpose(1, 2), c["rope_theta"])
    k = rope(rms(k, t[p + "self_attn.k_norm.weight"], eps).transpose(1, 2), c["rope_theta"])
    k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
    scores = (q @ k.transpose(-1, -2)) / hd ** 0.5
    scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, L, H * hd)
    x = x + a @ t[p + "self_attn.o_proj.weight"].T
    h = rms(x, t[p + "post_attention_layernorm.weight"], eps)
    gate, up = h @ t[p + "mlp.gate_proj.weight"].T, h @ t[p + "mlp.up_proj.weight"].T
    return x + (F.silu(gate) * up) @ t[p + "mlp.down_proj.weight"].T


def reference_forward(tensors: dict[str, Tensor], c: dict, ids: Tensor) -> tuple[Tensor, Tensor]:
    """``ids[B, L, 2]`` (text, speech channel) -> ``(text_logits[B,L,V], speech_logits[B,L,A])``."""
    t = {k: v.float() for k, v in tensors.items()}
    text_ids, speech_ids = ids[..., 0], ids[..., 1]
    is_speech = (text_ids == c["modality_pad_token_id"])[..., None]
    x = torch.where(is_speech, t["model.audio_embed.weight"][speech_ids], t["model.embed_tokens.weight"][text_ids])
    for i in range(c["num_shared_layers"]):
        x = layer(x, t, f"model.shared_block.layers.{i}.", c)
    tails = {}
    for block, norm in (("text_block", "text_norm"), ("audio_block", "audio_norm")):
        h = x
        for i in range(c["num_modality_layers"]):
            h = layer(h, t, f"model.{block}.layers.{i}.", c)
        tails[block] = rms(h, t[f"model.{norm}.weight"], c["rms_norm_eps"])
    text = tails["text_block"] @ t["text_lm_head.weight"].T
    speech = tails["audio_block"] @ t["audio_lm_head.weight"].T
    speech[..., c["eosp_token_id"] + 1:] = float("-inf")
    return text, speech
