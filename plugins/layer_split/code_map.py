"""Speech embedding rows tied to what the tokenizer's codes stand for, while a stage trains.

A free speech table learns each code's row on its own: a code heard only in training voices
moves, its near twin from another voice does not. With ``speech_code_map`` the row of code
``c`` is ``speech_embed[c] + proj(vectors[c])``, where ``vectors`` are the tokenizer's code
vectors (its codebook in feature space, trained to spell phonemes) and ``proj`` one shared
linear map starting at zero. Every step then moves all codes that sound alike together.
When the stage ends the map is folded into the table (:meth:`CodeMap.table`), so the saved
model is a plain speech embedding.
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


__all__ = ["CodeMap"]
