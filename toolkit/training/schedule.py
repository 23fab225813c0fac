"""The learning-rate schedule of every trainer: linear warmup, then cosine decay to a floor."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


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


__all__ = ["warmup_cosine"]
