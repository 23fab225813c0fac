"""Compress read speech to one position per spelled token before the trunk sees it.

Why: the hearing CTC loss makes each speech frame point at the text token being spoken or at
a blank, but the frozen trunk then sees a *stuttered* spelling: ~12 frames per second, most of
them blanks, each token repeated over several frames. Text the trunk can copy has one position
per token. Here a speech frame stays visible only where the cosine classifier of
:mod:`toolkit.speech_lm.hearing_ctc` starts emitting a token (the first frame of a run of the
same token; blanks and repeats are hidden). Hidden frames stay in the sequence (so labels,
caches and shapes are unchanged) but no later position attends to them, and positions are
counted over visible tokens only, so the trunk reads a sequence as long as the spelling (a
hidden frame shares the position of the visible one before it).

Only the trunk and the text branch read the compressed sequence. The speech branch sees every
frame at its plain position: to say a word it must know which of the word's codes it has said
already, and those are mostly frames that spell nothing new.

The rule is causal (a frame's fate depends on it and the frame before), so cached decoding hides
the same frames as a full pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from toolkit.speech_lm.hearing_ctc import frame_logits

CHUNK = 2048
"""Frames scored against the vocabulary at once (bounds the ``[frames, V]`` score matrix)."""


@dataclass
class CompressState:
    """What cached decoding carries: ``visible[B,S]`` of every position so far and the token
    the last speech frame spelled, ``last[B]`` (-1: a blank or no speech frame)."""

    visible: Tensor
    last: Tensor
    speech_positions: Tensor | None = None
    """The speech branch's (uncompressed) positions of the split-point states the caches keep."""


@torch.no_grad()
def spelled_tokens(frames: Tensor, table: Tensor) -> Tensor:
    """``frames[N,D]`` -> ``[N]`` the token the hearing classifier
    (:func:`toolkit.speech_lm.hearing_ctc.frame_logits`) picks against the text embedding
    ``table[V,D]``, or -1 where the blank wins."""
    out = torch.full((frames.shape[0],), -1, dtype=torch.long, device=frames.device)
    for start in range(0, frames.shape[0], CHUNK):
        best = frame_logits(frames[start:start + CHUNK].detach(), table).argmax(-1)
        out[start:start + CHUNK] = torch.where(best < table.shape[0], best, -1)
    return out


def visible_positions(x: Tensor, is_speech: Tensor, keep_speech: Tensor, table: Tensor,
                      last: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Which of the new positions the trunk may see, and what they spell.

    ``x[B,L,D]`` the read inputs, ``is_speech[B,L]``, ``keep_speech[B,L]`` speech positions
    always visible (segment markers), ``last[B]`` the token the frame before spelled (None:
    the sequence starts here). Returns ``visible[B,L]`` (text positions always), the new
    ``last[B]`` and ``spelled[B,L]``, the token each speech frame spells (-1: blank, marker or
    text)."""
    batch, length = is_speech.shape
    spelled = torch.full((batch, length), -1, dtype=torch.long, device=x.device)
    frames = is_speech & ~keep_speech
    spelled[frames] = spelled_tokens(x[frames], table)
    before = torch.full((batch, 1), -1, dtype=torch.long, device=x.device) if last is None else last[:, None]
    previous = torch.cat([before, spelled[:, :-1]], 1)
    starts = (spelled >= 0) & (spelled != previous)
    visible = ~frames | starts
    return visible, spelled[:, -1], spelled


def compressed_positions(visible: Tensor, new: int) -> Tensor:
    """Positions ``[B,new]`` of the last ``new`` of the positions ``visible[B,S]`` marks, counted
    over visible positions only: a hidden position takes the position of the last visible one
    before it (0 before any), so its query sits where the trunk's reading has got to."""
    return (visible.long().cumsum(-1) - 1).clamp(min=0)[:, -new:]


__all__ = ["CompressState", "compressed_positions", "spelled_tokens", "visible_positions"]
