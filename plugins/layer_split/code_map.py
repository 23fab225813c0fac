"""Speech embedding rows tied to what the tokenizer's codes stand for, while a stage trains.

A free speech table learns each code's row on its own: a code heard only in training voices
moves, its near twin from another voice does not. With ``speech_code_map`` the row of code
``c`` is ``speech_embed[c] + proj(vectors[c])``, where ``vectors`` are the tokenizer's code
vectors (its codebook in feature space, trained to spell phonemes) and ``proj`` one shared
linear map starting at zero. Every step then moves all codes that sound alike together.
When the stage ends the map is folded into the table (:meth:`CodeMap.table`), so the saved
model is a plain speech embedding.

``speech_head_code_map`` ties the speech head the same way (:class:`CodeTiedHead`): the
score of code ``c`` is ``h . (head[c] + proj(vectors[c]))``, so a step that raises one code
raises the codes that sound like it, and a code the targets rarely use still gets a row that
means something. Folded into a plain head when the stage ends.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class CodeMap(nn.Module):
    """``ids[...]`` -> ``[..., D]``: ``proj(vectors[ids])``.

    ``vectors[n_codes, C]`` are standardised per feature and scaled to unit row norm on
    average, so the map's step size does not depend on the tokenizer's feature scale; rows
    ``n_codes..table_size`` (the special speech tokens) are zero. ``proj`` starts at zero, so
    the embedding starts as the table alone."""

    def __init__(self, vectors: Tensor, table_size: int, dim: int) -> None:
        super().__init__()
        v = vectors.detach().float()
        v = (v - v.mean(0)) / (v.std(0) + 1e-6) / math.sqrt(v.shape[1])
        table = torch.zeros(table_size, v.shape[1])
        table[: v.shape[0]] = v
        # recomputed from the tokenizer at every (re)start, so not part of any checkpoint
        self.register_buffer("vectors", table, persistent=False)
        self.proj = nn.Linear(v.shape[1], dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, ids: Tensor) -> Tensor:
        return self.proj(self.vectors[ids].to(self.proj.weight.dtype))

    @torch.no_grad()
    def table(self) -> Tensor:
        """The map's contribution to every row: ``[table_size, D]``."""
        return self.proj(self.vectors.to(self.proj.weight.dtype))


class CodeTiedHead(nn.Module):
    """``hidden[..., D]`` -> logits ``[..., table_size]`` of ``head`` plus the tied part
    ``(hidden @ proj) @ vectors.T`` (a ``[D, C]`` and a ``[C, table_size]`` product, cheaper
    than materialising the ``[table_size, D]`` rows)."""

    def __init__(self, head: nn.Linear, vectors: Tensor) -> None:
        super().__init__()
        self.head = head
        self.map = CodeMap(vectors, head.out_features, head.in_features).to(head.weight.device, head.weight.dtype)

    @property
    def weight(self) -> Tensor:
        """The rows the head scores with now, ``[table_size, D]`` (no gradient)."""
        return self.head.weight.detach() + self.map.table()

    def forward(self, hidden: Tensor) -> Tensor:
        tied = hidden @ self.map.proj.weight.to(hidden.dtype)  # autocast re-casts both
        return self.head(hidden) + tied @ self.map.vectors.to(tied.dtype).T

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The plain head with the map folded in (the same logits)."""
        self.head.weight.add_(self.map.table())
        return self.head


__all__ = ["CodeMap", "CodeTiedHead"]
