"""A strictly local character CTC head over quantised tokens.

The Whisper-decoder ASR loss can be met by a language model over the whole sequence: on a
small corpus it learns sentence templates and leaves names out of the codes. This head sees one
token at a time (no context), so the only way to spell an utterance is for every code to carry
the letters spoken in its own 80 ms. Each token is unfolded into ``pool`` sub-frames (50 Hz), so
CTC has room for about 15 characters per second.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

ALPHABET = " abcdefghijklmnopqrstuvwxyz'0123456789"
"""CTC labels 1..len(ALPHABET); 0 is the blank."""


def normalise(text: str) -> str:
    """Lower case, anything outside :data:`ALPHABET` becomes a space, spaces collapsed."""
    return re.sub(r" +", " ", re.sub(f"[^{re.escape(ALPHABET)}]", " ", text.lower())).strip()


def char_ids(text: str) -> list[int]:
    """``text`` -> CTC label ids (1-based; see :data:`ALPHABET`)."""
    return [ALPHABET.index(c) + 1 for c in normalise(text)]


class LocalCTCHead(nn.Module):
    """``tokens[B,L,D]`` -> character log-probs ``[B, L*pool, len(ALPHABET)+1]``, each token
    read on its own."""

    def __init__(self, dim: int, pool: int, hidden: int = 256) -> None:
        super().__init__()
        self.pool = pool
        self.unfold = nn.Linear(dim, pool * hidden)
        self.out = nn.Sequential(nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, len(ALPHABET) + 1))

    def forward(self, tokens: Tensor) -> Tensor:
        frames = rearrange(self.unfold(tokens), "b l (p h) -> b (l p) h", p=self.pool)
        return self.out(frames).log_softmax(-1)

    def loss(self, tokens: Tensor, valid: Tensor, texts: list[str]) -> Tensor:
        """Mean CTC loss per character over the batch: ``tokens[B,L,D]``, ``valid[B,L]``."""
        log_probs = rearrange(self(tokens).float(), "b t v -> t b v")
        labels = [torch.tensor(char_ids(t), dtype=torch.long) for t in texts]
        target_lengths = torch.tensor([len(x) for x in labels])
        targets = torch.cat(labels).to(tokens.device)
        return F.ctc_loss(log_probs, targets, valid.sum(1) * self.pool, target_lengths.to(tokens.device),
                          blank=0, reduction="mean", zero_infinity=True)

    @torch.no_grad()
    def greedy(self, tokens: Tensor) -> str:
        """Best-path transcript of ``tokens[L,D]`` (collapse repeats, drop blanks)."""
        best = self(tokens[None])[0].argmax(-1).tolist()
        chars = [ALPHABET[i - 1] for j, i in enumerate(best) if i and (j == 0 or i != best[j - 1])]
        return re.sub(r" +", " ", "".join(chars)).strip()
