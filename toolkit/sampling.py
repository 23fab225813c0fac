"""Next-token choice from logits: repetition penalty, temperature, top-k, top-p, greedy.

Semantics follow Hugging Face's logits processors, applied in the same order (repetition
penalty, then temperature, top-k, top-p). Everything works on ``logits[B,V]`` with a
``history[B,N]`` of earlier ids per row (negative entries are ignored), so any generator
(text, or each channel of the split model) can reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from toolkit.errors import ToolkitError


@dataclass
class SamplingParams:
    """How to choose the next token. ``temperature == 0`` is greedy (argmax after the penalty).

    ``top_k == 0`` and ``top_p == 1.0`` disable those filters; ``repetition_penalty == 1.0``
    disables the penalty (> 1 discourages ids already in the history).
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ToolkitError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ToolkitError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ToolkitError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ToolkitError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def repetition_penalty(logits: Tensor, history: Tensor, penalty: float) -> Tensor:
    """Divide positive (multiply negative) logits of ids in ``history[B,N]`` by ``penalty``.

    ``logits[B,V]`` -> ``[B,V]``; each id counts once however often it occurs; ids < 0 are
    ignored (use them for padding)."""
    if penalty == 1.0 or history.numel() == 0:
        return logits
    valid = history >= 0
    counts = torch.zeros_like(logits).scatter_add_(1, history.clamp(min=0), valid.to(logits.dtype))
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(counts > 0, penalised, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits per row (ties at the k-th value kept), the rest ``-inf``."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: drop the least likely ids whose total probability is at most ``1 - p``
    (the most likely id always stays)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1 - p)
    drop_sorted[..., -1:] = False
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def process_logits(logits: Tensor, history: Tensor | None, params: SamplingParams) -> Tensor:
    """All processors of ``params`` in Hugging Face's order: ``logits[B,V]`` -> fp32 ``[B,V]``."""
    logits = logits.float()
    if history is not None:
        logits = repetition_penalty(logits, history, params.repetition_penalty)
    if params.greedy:
        return logits
    logits = logits / params.temperature
    logits = top_k_filter(logits, params.top_k)
    return top_p_filter(logits, params.top_p)


def sample(logits: Tensor, history: Tensor | None, params: SamplingParams,
           generator: torch.Generator | None = None) -> Tensor:
    """Choose one id per row: ``logits[B,V]``, ``history[B,N]`` -> ``ids[B]`` long.

    Greedy when ``params.temperature == 0``; otherwise a draw from the processed
    distribution using ``generator`` (pass a seeded one for reproducible samples)."""
    scores = process_logits(logits, history, params)
    if params.greedy:
        return scores.argmax(dim=-1)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


__all__ = ["SamplingParams", "repetition_penalty", "top_k_filter", "top_p_filter",
           "process_logits", "sample"]
