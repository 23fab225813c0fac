"""Fused causal attention in Triton (FlashAttention-2 style), forward and backward.

One launch covers every head, so the split model's two branches, folded into the head axis
(``q[B, 2H, L, d]``, ``k/v[B, 2Hkv, S, d]``), are computed together. Tiled with an online
softmax: no ``L x S`` matrix is ever stored; the forward keeps the per-row logsumexp for the
backward, which recomputes the probabilities block by block. dK/dV of a KV head are summed
over its query heads inside one program (no atomics).

Semantics match :func:`toolkit.kernels.dispatch.sdpa_attention` except for one documented
case: a query row that sees no key at all (a padding query under left padding) gets a zero
output and zero gradients here, while the SDPA path lets it attend to every key. Both are
finite; such rows are padding and nothing should read them.

On CUDA the block sizes are autotuned (per head dim, padding, group size and power-of-two
sequence length bucket). On the CPU the kernels run only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before this module is first imported), with a fixed block size
and every dot computed in fp32 (the interpreter gets bf16 dots wrong).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch
import triton
from torch import Tensor
from triton.runtime.jit import JITFunction

from toolkit.errors import ToolkitError
from toolkit.kernels import flash_kernels as kernels

__all__ = ["INTERPRETED", "SUPPORTED_HEAD_DIMS", "flash_attention"]

#: True when the kernels were built for Triton's CPU interpreter (``TRITON_INTERPRET=1``).
INTERPRETED: bool = not isinstance(kernels.fwd_kernel, JITFunction)
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_LOG2E = 1.4426950408889634
_INTERPRETER_BLOCKS = (16, 16)


def flash_attention(q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None = None,
                    scale: float | None = None, *,
                    block_sizes: tuple[int, int] | None = None) -> Tensor:
    """Causal grouped-KV attention with the fused Triton kernel (differentiable).

    Args:
        q: ``[B, H, L, d]`` queries, the last ``L`` positions of the ``S`` keys.
        k, v: ``[B, Hkv, S, d]``, ``H % Hkv == 0``; query head ``h`` reads KV head
            ``h // (H // Hkv)``.
        key_padding: ``[B, S]`` bool, True where the key is a real token.
        scale: softmax scale, default ``d ** -0.5``.
        block_sizes: ``(BLOCK_M, BLOCK_N)`` to skip autotuning (tests, tuning); powers of two
            of at least 16.
    Returns:
        ``[B, H, L, d]`` in ``q``'s dtype; rows that see no key are zero.
    """
    _check_inputs(q, k, v, key_padding)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if q.numel() == 0:  # no query: nothing to launch
        return q * 0.0
    return _FlashAttention.apply(q, k, v, key_padding, float(scale), block_sizes)


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None) -> None:
    where = "toolkit.kernels.flash_attention"
    if not q.is_cuda and not INTERPRETED:
        raise ToolkitError(
            f"{where}: the Triton kernel needs CUDA tensors (got {q.device}); set "
            "TRITON_INTERPRET=1 before starting Python to run it slowly on the CPU, or use "
            "the sdpa backend (recipe: kernels.attention: sdpa)")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ToolkitError(f"{where}: q, k, v must be [B, heads, len, d]; got {tuple(q.shape)}, "
                           f"{tuple(k.shape)}, {tuple(v.shape)}")
    (B, H, L, d), (Bk, Hkv, S, dk) = q.shape, k.shape
    if k.shape != v.shape or Bk != B or dk != d:
        raise ToolkitError(f"{where}: k {tuple(k.shape)} and v {tuple(v.shape)} must be "
                           f"[{B}, Hkv, S, {d}] to match q {tuple(q.shape)}")
    if H % Hkv:
        raise ToolkitError(f"{where}: {H} query heads are not a multiple of {Hkv} KV heads")
    if L > S:
        raise ToolkitError(f"{where}: {L} queries but only {S} keys; queries must be the last L keys")
    if d not in SUPPORTED_HEAD_DIMS:
        raise ToolkitError(f"{where}: head_dim {d} unsupported; use one of {SUPPORTED_HEAD_DIMS} "
                           "or the sdpa backend")
    if q.dtype not in _DTYPES or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ToolkitError(f"{where}: q, k, v must share one dtype of fp16/bf16/fp32; got "
                           f"{q.dtype}, {k.dtype}, {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ToolkitError(f"{where}: q, k, v on different devices ({q.device}, {k.device}, {v.device})")
    if key_padding is not None and (key_padding.shape != (B, S) or key_padding.dtype != torch.bool):
        raise ToolkitError(f"{where}: key_padding must be bool [{B}, {S}]; got "
                           f"{key_padding.dtype} {tuple(key_padding.shape)}")


class _FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, key_padding: Tensor | None, scale: float,
                block_sizes: tuple[int, int] | None) -> Tensor:
        q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
        pad = _padding_bytes(key_padding, q)
        out, lse = _forward(q, k, v, pad, key_padding is not None, scale, block_sizes)
        ctx.save_for_backward(q, k, v, out, lse, pad)
        ctx.has_pad, ctx.scale, ctx.block_sizes = key_padding is not None, scale, block_sizes
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, out, lse, pad = ctx.saved_tensors
        dq, dk, dv = _backward(q, k, v, out, lse, pad, _last_dim_contiguous(grad_out),
                               ctx.has_pad, ctx.scale, ctx.block_sizes)
        return dq, dk, dv, None, None, None


def _last_dim_contiguous(t: Tensor) -> Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def _padding_bytes(key_padding: Tensor | None, q: Tensor) -> Tensor:
    """``[B, S]`` uint8 (1 = real key), or an empty placeholder the kernels never read."""
    if key_padding is None:
        return torch.empty(0, 1, dtype=torch.uint8, device=q.device)
    return key_padding.to(device=q.device, dtype=torch.uint8).contiguous()


def _flags(q: Tensor, has_pad: bool, S: int) -> dict:
    return dict(HEAD_DIM=q.shape[-1], HAS_PAD=has_pad,
                UPCAST=INTERPRETED and q.dtype != torch.float32,
                PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
                LEN_BUCKET=triton.next_power_of_2(S))


def _forward(q: Tensor, k: Tensor, v: Tensor, pad: Tensor, has_pad: bool, scale: float,
             block_sizes: tuple[int, int] | None) -> tuple[Tensor, Tensor]:
    """Returns ``out[B, H, L, d]`` and the base-2 logsumexp ``lse[B, H, L]`` (fp32)."""
    B, H, L, _ = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty(B, H, L, dtype=torch.float32, device=q.device)
    args = (q, k, v, out, lse, pad, *q.stride()[:3], *k.stride()[:3], *v.stride()[:3],
            *out.stride()[:3], pad.stride(0), H, H // Hkv, L, S, scale * _LOG2E)
    grid = lambda meta: (triton.cdiv(L, meta["BLOCK_M"]), B * H)  # noqa: E731
    _launch("fwd", grid, args, _flags(q, has_pad, S), block_sizes, q.device)
    return out, lse


def _backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, pad: Tensor,
              grad_out: Tensor, has_pad: bool, scale: float,
              block_sizes: tuple[int, int] | None) -> tuple[Tensor, Tensor, Tensor]:
    B, H, L, d = q.shape
    Hkv, S = k.shape[1], k.shape[2]
    flags = _flags(q, has_pad, S)
    delta = torch.empty_like(lse)
    with _on_device(q.device):
        block = 16 if INTERPRETED else 64
        kernels.delta_kernel[(triton.cdiv(L, block), B * H)](
            out, grad_out, delta, *out.stride()[:3], *grad_out.stride()[:3], H, L,
            HEAD_DIM=d, BLOCK_M=block)
    dq = torch.empty_like(q, memory_format=torch.contiguous_format)
    dk = torch.empty_like(k, memory_format=torch.contiguous_format)
    dv = torch.empty_like(v, memory_format=torch.contiguous_format)
    common = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *grad_out.stride()[:3])
    kv_args = (q, k, v, grad_out, lse, delta, dk, dv, pad, *common, *dk.stride()[:3],
               *dv.stride()[:3], pad.stride(0), H, Hkv, H // Hkv, L, S, scale, scale * _LOG2E)
    kv_grid = lambda meta: (triton.cdiv(S, meta["BLOCK_N"]), B * Hkv)  # noqa: E731
    _launch("dkdv", kv_grid, kv_args, flags, block_sizes, q.device)
    q_args = (q, k, v, grad_out, lse, delta, dq, pad, *common, *dq.stride()[:3], pad.stride(0),
              H, H // Hkv, L, S, scale, scale * _LOG2E)
    q_grid = lambda meta: (triton.cdiv(L, meta["BLOCK_M"]), B * H)  # noqa: E731
    _launch("dq", q_grid, q_args, flags, block_sizes, q.device)
    return dq, dk, dv


def _launch(name: str, grid: Callable[[dict], tuple[int, int]], args: tuple, flags: dict,
            block_sizes: tuple[int, int] | None, device: torch.device) -> None:
    """Run kernel ``name`` with fixed blocks (interpreter, or ``block_sizes`` given) or autotuned."""
    kernel = getattr(kernels, f"{name}_kernel")
    with _on_device(device):
        if INTERPRETED or block_sizes is not None:
            block_m, block_n = block_sizes or _INTERPRETER_BLOCKS
            meta = dict(flags, BLOCK_M=block_m, BLOCK_N=block_n)
            warps = 8 if block_m * block_n >= 128 * 64 else 4
            kernel[grid(meta)](*args, **meta, num_warps=warps, num_stages=2)
        else:
            _autotuned(name)[grid](*args, **flags)


def _on_device(device: torch.device):
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# (BLOCK_M, BLOCK_N, num_warps, num_stages), chosen around what FlashAttention-2 in Triton
# uses on Hopper/Ampere; the autotuner drops configs that exceed shared memory.
_CONFIGS = {
    "fwd": [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (128, 128, 8, 2),
            (64, 64, 4, 3), (64, 128, 4, 3), (128, 32, 4, 3), (64, 64, 4, 4)],
    "dkdv": [(32, 128, 4, 3), (32, 128, 8, 3), (64, 128, 8, 2), (64, 128, 8, 3),
             (64, 64, 4, 3), (32, 64, 4, 4), (128, 128, 8, 2)],
    "dq": [(128, 32, 4, 3), (128, 64, 8, 2), (128, 64, 8, 3), (64, 64, 4, 3),
           (64, 32, 4, 4), (128, 128, 8, 2)],
}


@functools.cache
def _autotuned(name: str):
    """The autotuned launcher of kernel ``name`` (CUDA only: built on first use)."""
    configs = [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
               for m, n, w, s in _CONFIGS[name]]
    key = ["LEN_BUCKET", "HEAD_DIM", "HAS_PAD", "GROUP", "PRECISION"]
    return triton.autotune(configs=configs, key=key)(getattr(kernels, f"{name}_kernel"))
