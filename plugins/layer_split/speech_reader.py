"""A local reader of speech: causal convolutions over the speech embeddings.

Why local: every contextual reader tried in front of the frozen trunk (the LM itself, adapter
blocks over the whole sequence) learned the training sentences by heart and heard no name in
sentences it had not seen, while the tokenizer's context-free phoneme head did generalise. A
reader that sees only the last ``receptive_field`` codes (under a second of speech) cannot
recall a sentence, only how a stretch of speech sounds. Trained with the hearing CTC loss
(:mod:`toolkit.speech_lm.hearing_ctc`) its output spells the text tokens being spoken, which
the frozen trunk reads like text.

Convolutions, norms and projections have no bias, and the norm of a zero vector is zero, so a
zero input stays zero through every block: that makes the zero left padding of each block the
same as a history of zero inputs, and so the cached (incremental) output bit-equal to the
offline one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class SpeechReader(nn.Module):
    """``layers`` residual blocks ``h + out(gelu(conv(norm(h))))``, each conv causal with
    ``kernel`` taps and ``width`` channels; ``out`` starts at zero, so the reader starts as
    the identity (the plain speech embedding)."""

    def __init__(self, dim: int, layers: int, kernel: int, width: int, gen: torch.Generator) -> None:
        super().__init__()
        if layers < 1 or kernel < 1 or width < 1:
            raise ValueError(f"speech reader needs layers, kernel, width >= 1; got {layers}, {kernel}, {width}")
        self.kernel = kernel
        self.norms = nn.ModuleList(nn.RMSNorm(dim, eps=1e-6) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv1d(dim, width, kernel, bias=False) for _ in range(layers))
        self.outs = nn.ModuleList(nn.Linear(width, dim, bias=False) for _ in range(layers))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / (dim * kernel) ** 0.5)
            for out in self.outs:
                out.weight.zero_()

    @property
    def history(self) -> int:
        """Past inputs an output depends on: ``receptive_field - 1``."""
        return len(self.convs) * (self.kernel - 1)

    def forward(self, x: Tensor, is_speech: Tensor, past: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x[B,L,D]`` embeddings, ``is_speech[B,L]``, ``past[B,H,D]`` the last ``H = history``
        masked inputs before ``x`` (None: the sequence starts here) -> the read speech
        ``[B,L,D]`` (meaningful at speech positions) and the new ``past[B,H,D]``.

        Non-speech positions enter as zeros: the reader reads codes only."""
        x = x * is_speech[..., None].to(x.dtype)
        if past is None:
            past = x.new_zeros(x.shape[0], self.history, x.shape[-1])
        h = torch.cat([past.to(x.dtype), x], 1)
        new_past = h[:, h.shape[1] - self.history:]
        for norm, conv, out in zip(self.norms, self.convs, self.outs):
            z = F.pad(rearrange(norm(h), "b l d -> b d l"), (self.kernel - 1, 0))
            h = h + out(F.gelu(rearrange(conv(z), "b w l -> b l w")))
        return h[:, past.shape[1]:], new_past


__all__ = ["SpeechReader"]
