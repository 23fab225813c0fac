"""Rotary position embedding with the ``rope_scaling`` variants of Llama/Qwen/Mistral configs."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from toolkit.errors import ToolkitError

SCALINGS = ("default", "linear", "dynamic", "llama3", "yarn")


def rope_frequencies(head_dim: int, theta: float, scaling: dict[str, Any] | None,
                     max_position: int) -> tuple[Tensor, float]:
    """Inverse frequencies ``[head_dim/2]`` (fp32) and the cos/sin amplitude for a config.

    ``scaling`` is the Hugging Face ``rope_scaling`` / ``rope_parameters`` dict (or None).
    ``dynamic`` returns the unscaled frequencies; :class:`RotaryEmbedding` rescales them per call.
    """
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind in ("default", "dynamic"):
        return inv, 1.0
    if kind == "linear":
        return inv / float(scaling["factor"]), 1.0
    if kind == "llama3":
        return _llama3(inv, scaling), 1.0
    if kind == "yarn":
        return _yarn(head_dim, theta, scaling, max_position)
    raise ToolkitError(f"rope_scaling type '{kind}' is not supported; supported: {', '.join(SCALINGS)}")


def _llama3(inv: Tensor, s: dict[str, Any]) -> Tensor:
    factor, low, high = float(s["factor"]), float(s["low_freq_factor"]), float(s["high_freq_factor"])
    old_len = float(s["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old_len / low, inv / factor, inv)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, smoothed, scaled)


def _yarn(dim: int, theta: float, s: dict[str, Any], max_position: int) -> tuple[Tensor, float]:
    factor = float(s["factor"])
    old_len = s.get("original_max_position_embeddings") or max_position
    mscale = s.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction(rot: float) -> float:
        return (dim * math.log(old_len / (rot * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(correction(beta_fast)), 0)
    high = min(math.ceil(correction(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    pos = theta ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation_weight = 1 - ramp
    inv = (1.0 / (factor * pos)) * (1 - extrapolation_weight) + (1.0 / pos) * extrapolation_weight
    return inv, float(mscale)


class RotaryEmbedding(nn.Module):
    """``positions[B,L]`` long -> ``(cos, sin)`` each ``[B,L,head_dim]`` in ``dtype``.

    Frequencies follow the config's ``rope_scaling`` (``default``, ``linear``, ``dynamic``
    NTK, ``llama3``, ``yarn``). Apply with :func:`apply_rotary` (the rotate-half layout).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, scaling: dict[str, Any] | None = None,
                 max_position: int = 2048) -> None:
        super().__init__()
        inv, self.amplitude = rope_frequencies(head_dim, theta, scaling, max_position)
        self.register_buffer("inv_freq", inv, persistent=False)
        self.head_dim, self.theta, self.max_position = head_dim, theta, max_position
        kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
        self.dynamic_factor = float(scaling["factor"]) if kind == "dynamic" else None

    def _inv_freq(self, positions: Tensor) -> Tensor:
        if self.dynamic_factor is None:
            return self.inv_freq
        seq_len = int(positions.max()) + 1
        if seq_len <= self.max_position:
            return self.inv_freq
        base = self.theta * ((self.dynamic_factor * seq_len / self.max_position)
                             - (self.dynamic_factor - 1)) ** (self.head_dim / (self.head_dim - 2))
        exps = torch.arange(0, self.head_dim, 2, device=positions.device).float() / self.head_dim
        return 1.0 / base ** exps

    def forward(self, positions: Tensor, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        freqs = positions[..., None].float() * self._inv_freq(positions).to(positions.device)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        if self.amplitude != 1.0:
            cos, sin = cos * self.amplitude, sin * self.amplitude
        return cos.to(dtype), sin.to(dtype)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x[B,H,L,d]`` by ``cos, sin[B,L,d]`` (rotate-half layout, as Hugging Face)."""
    cos, sin = cos[:, None], sin[:, None]
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
