"""Choose the attention implementation: Triton on CUDA, SDPA elsewhere, or as forced."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor

from toolkit.errors import ToolkitError

Backend = Literal["auto", "triton", "sdpa"]
_SDPA_HAS_GQA = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)
_backend: Backend = "auto"
CPU_FP32_MAX_KEYS = 256
"""On the CPU, attention in bf16 / fp16 (or under autocast) that autograd will differentiate
runs in fp32 (inputs cast up, output cast back) when it has at most this many keys: PyTorch's
CPU flash backward is several times slower in bf16 than in fp32 on short sequences; at 512
keys bf16 wins again, and a forward alone is no faster in fp32. Measured on a CPU with
avx512_bf16 and no AMX (``python benchmarks/attention.py --cpu --cpu-dtype bf16 --preset
smollm2 --batch 32 --lengths 40 128 256 512``, the ``toolkit sdpa`` row)."""


def set_backend(backend: Backend) -> None:
    """Set the process-wide default backend (the recipe's ``kernels.attention``)."""
    global _backend
    if backend not in ("auto", "triton", "sdpa"):
        raise ToolkitError(f"unknown attention backend '{backend}'; choose auto, triton or sdpa")
    _backend = backend


def get_backend() -> Backend:
    return _backend


def attention_mask(key_padding: Tensor | None, q_len: int, k_len: int,
                   device: torch.device) -> Tensor:
    """Boolean mask ``[B|1, 1, L, S]`` (True = attend): causal with the queries being the last
    ``q_len`` of ``k_len`` keys, and padded keys removed. A row with nothing to attend to
    (a padding query under left padding) attends everywhere instead, so outputs stay finite."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)
    mask = q_pos[:, None] >= torch.arange(k_len, device=device)[None, :]
    mask = mask[None, None]
    if key_padding is not None:
        mask = mask & key_padding[:, None, None, :].bool()
        mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask


def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None = None,
                   scale: float | None = None) -> Tensor:
    """Causal GQA attention with PyTorch's SDPA: ``q[B,H,L,d]``, ``k,v[B,Hkv,S,d]`` -> ``[B,H,L,d]``."""
    if _backward_faster_in_fp32(q, k, v):
        with torch.autocast("cpu", enabled=False):  # autocast would cast SDPA's inputs back
            return sdpa_attention(q.float(), k.float(), v.float(), key_padding, scale).to(q.dtype)
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and not q.is_cuda and _SDPA_HAS_GQA:
        # On the CPU SDPA groups heads itself without copying KV (less memory, no slower);
        # on CUDA that would push masked calls off the memory-efficient kernel: repeat there.
        return _sdpa(q, k, v, key_padding, scale, enable_gqa=True)
    if groups > 1:
        k = repeat(k, "b h s d -> b (h g) s d", g=groups)
        v = repeat(v, "b h s d -> b (h g) s d", g=groups)
    return _sdpa(q, k, v, key_padding, scale)


def _backward_faster_in_fp32(q: Tensor, k: Tensor, v: Tensor) -> bool:
    low = q.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled("cpu")
    return (not q.is_cuda and low and k.shape[2] <= CPU_FP32_MAX_KEYS and torch.is_grad_enabled()
            and (q.requires_grad or k.requires_grad or v.requires_grad))


def _sdpa(q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None, scale: float | None,
          **extra: bool) -> Tensor:
    L, S = q.shape[2], k.shape[2]
    if key_padding is None and L == S:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, **extra)
    if key_padding is None and L == 1:  # one decoding step sees every key: no mask to build
        return F.scaled_dot_product_attention(q, k, v, scale=scale, **extra)
    mask = attention_mask(key_padding, L, S, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, **extra)


def attention(q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None = None,
              scale: float | None = None, backend: Backend | None = None) -> Tensor:
    """Causal attention with grouped KV heads.

    Args:
        q: ``[B, H, L, d]`` queries; they are the last ``L`` positions of the ``S`` keys.
        k, v: ``[B, Hkv, S, d]`` with ``H % Hkv == 0`` (query head ``h`` reads KV head
            ``h // (H // Hkv)``, so several branches folded into the head axis stay separate).
        key_padding: ``[B, S]`` bool, True where the key is a real token.
    Returns:
        ``[B, H, L, d]``.
    """
    choice = backend or _backend
    if choice not in ("auto", "triton", "sdpa"):
        raise ToolkitError(f"unknown attention backend '{choice}'; choose auto, triton or sdpa")
    if choice == "triton" or (choice == "auto" and q.is_cuda and _triton_ok()):
        try:
            from toolkit.kernels.triton_attention import flash_attention
        except ImportError as err:
            raise ToolkitError(f"attention backend 'triton' is unavailable ({err}); install "
                               "triton or use kernels.attention: sdpa") from None
        return flash_attention(q, k, v, key_padding=key_padding, scale=scale)
    return sdpa_attention(q, k, v, key_padding=key_padding, scale=scale)


def _triton_ok() -> bool:
    try:
        import toolkit.kernels.triton_attention  # noqa: F401
    except ImportError:
        return False
    return True
