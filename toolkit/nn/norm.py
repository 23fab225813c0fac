"""RMSNorm as Llama-family models define it (statistics in fp32, weight applied after the cast)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """``y = weight * x / sqrt(mean(x^2) + eps)`` over the last axis.

    ``x[..., D]`` -> ``[..., D]`` in the dtype of ``x``; the normalisation runs in fp32 and the
    result is cast back before the weight multiplies it (Hugging Face's order, which matters in
    bf16).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * normed.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
