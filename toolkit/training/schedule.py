"""The optimizer and learning-rate schedule of every trainer: AdamW (fused), linear warmup, then
cosine decay to a floor."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


def adamw(params: Iterable, **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)`` with PyTorch's fused kernel: the same update
    (to float rounding) in one pass per tensor. On a 2-core CPU the default per-tensor loop
    took 1.06 s a step for 18M parameters in 177 tensors (the speech tokenizer), the fused one
    0.03 s. The fused kernel writes the weights without bumping their version counters, which
    is how a cached copy of a weight (:class:`toolkit.nn.FastLinear`) knows it is stale, so
    each step bumps them."""
    optimizer = torch.optim.AdamW(params, fused=True, **kwargs)
    optimizer.register_step_post_hook(_bump_versions)
    return optimizer


def _bump_versions(optimizer: torch.optim.Optimizer, *_args) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            torch.autograd.graph.increment_version(p)


def warmup_cosine(warmup: int, max_steps: int, min_lr_ratio: float = 0.1,
                  float32_cosine: bool = False) -> Callable[[int], float]:
    """The multiplier of the base learning rate at optimizer step ``step``, for ``LambdaLR``:
    ``(step + 1) / warmup`` over the first ``warmup`` steps (none when ``warmup <= 0``), then a
    cosine from 1 down to ``min_lr_ratio`` at ``max_steps``, and ``min_lr_ratio`` after that.

    ``float32_cosine`` takes the cosine in float32 (``torch.cos`` of a float32 tensor) instead of
    float64, as the text-LM pretraining always has; it is kept so those runs stay bit-identical.

    A plain function, not a callable object: ``LambdaLR`` leaves functions out of its state, so
    a resumed run follows the schedule of its current settings rather than the checkpoint's.
    """

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        cosine = (torch.cos(torch.tensor(progress * math.pi)).item() if float32_cosine
                  else math.cos(math.pi * progress))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cosine)

    return factor


__all__ = ["adamw", "warmup_cosine"]
