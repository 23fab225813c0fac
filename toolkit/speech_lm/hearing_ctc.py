"""A CTC loss that makes what the shared blocks receive at speech positions spell the transcript
in the trunk's own text tokens.

Hypothesis behind it: a frozen text trunk is good at copying text it has been shown ("repeat
after me"). If the speech input at each 80 ms position points in the direction of the text
embedding of the token being spoken (or of a blank), the trunk reads a speech segment like a
stuttered spelling of the transcript and transcribing it becomes copying. The next-token loss
alone gives the speech embedding (and adapter) no direct signal of *which* token a position
holds; this loss does.

The classifier is the frozen text embedding itself, by cosine: ``logits[t, v] = SCALE *
cos(x_t, E_v)``, and the blank has the constant logit ``log(V)``: a position that points at no
token in particular (all cosines near 0) is a blank, and one emits token ``v`` once
``SCALE * cos`` clears ``log V`` (cos > 0.34 for a 49k vocabulary). It adds no parameter, so
nothing but the speech side changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SCALE = 32.0
"""Cosine logits range over [-32, 32]: enough for a peaked softmax over a 49k vocabulary."""


def frame_logits(frames: Tensor, table: Tensor, blank_logit: float | None = None) -> Tensor:
    """``frames[..., D]`` against the text embedding ``table[V, D]`` -> the classifier's logits
    ``[..., V + 1]``: ``SCALE * cos`` per token, the blank last with logit ``blank_logit``
    (default ``log V``; a caller scoring a subset of a vocabulary passes the whole one's)."""
    cos = F.normalize(frames.float(), dim=-1) @ F.normalize(table.detach().float(), dim=-1).T
    blank_logit = math.log(table.shape[0]) if blank_logit is None else blank_logit
    return torch.cat([SCALE * cos, torch.full_like(cos[..., :1], blank_logit)], -1)


def frame_log_probs(frames: Tensor, table: Tensor, blank_logit: float | None = None) -> Tensor:
    """:func:`frame_logits` as log-probs ``[..., V + 1]``."""
    return frame_logits(frames, table, blank_logit).log_softmax(-1)


def speech_log_probs(inputs: Tensor, is_speech: Tensor, table: Tensor,
                     blank_logit: float | None = None) -> tuple[Tensor, Tensor]:
    """The classifier's log-probs at each row's speech positions, in order, laid out for
    ``F.ctc_loss``: ``inputs[B,L,D]``, ``is_speech[B,L]`` -> ``log_probs[T,B,V+1]`` (zero past
    each row's length) and ``lengths[B]``.

    The classifier runs on the real frames only: a batch padded to its longest utterance is
    ~45 % padding, and the cosine against the vocabulary is most of the cost. The frames are
    scattered into a batch-major grid in one ``index_put``: with ``pad_sequence`` the per-row
    copies of its backward cost more than the padding saved."""
    lengths = is_speech.sum(1)
    flat = frame_log_probs(inputs[is_speech], table, blank_logit)  # [N, V + 1], row by row
    rows = is_speech.nonzero(as_tuple=True)[0]
    slots = (is_speech.cumsum(1) - 1)[is_speech]  # each frame's place among its row's frames
    grid = flat.new_zeros(len(lengths), int(lengths.max()), flat.shape[-1])
    return grid.index_put((rows, slots), flat).transpose(0, 1), lengths


def hearing_ctc_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor | None:
    """Mean CTC loss per transcript token over the rows of ``batch`` that carry a
    ``transcript[B,T]`` (``transcript_lengths[B]`` > 0) and speech; None when none does.

    ``model.speech_input(input_ids)`` gives ``[B,L,D]``, what the shared blocks receive."""
    if "transcript" not in batch:
        return None
    lengths = batch["transcript_lengths"]
    ids = batch["input_ids"]
    is_speech = ids[..., 0] == model.tokens.modality_pad
    rows = (lengths > 0) & is_speech.any(1)
    if not bool(rows.any()):
        return None
    inputs = model.speech_input(ids[rows])
    table = model.embed_tokens.weight
    log_probs, frame_lengths = speech_log_probs(inputs, is_speech[rows], table)
    targets, target_lengths = batch["transcript"][rows], lengths[rows]
    return F.ctc_loss(log_probs, targets, frame_lengths, target_lengths, blank=table.shape[0],
                      reduction="mean", zero_infinity=True)


@torch.no_grad()
def greedy_tokens(model: nn.Module, codes: Tensor) -> list[int]:
    """The text tokens the speech input of ``codes[n]`` spells by best path (repeats
    collapsed, blanks dropped): what this loss teaches, for inspection."""
    from toolkit.speech_lm.layout import speech_positions

    grid = speech_positions(codes, model.tokens)[None]
    frames = model.speech_input(grid)[0][grid[0, :, 0] == model.tokens.modality_pad]
    best = frame_logits(frames, model.embed_tokens.weight).argmax(-1).tolist()
    blank = model.embed_tokens.weight.shape[0]
    return [t for j, t in enumerate(best) if t != blank and (j == 0 or t != best[j - 1])]


__all__ = ["hearing_ctc_loss", "greedy_tokens", "speech_log_probs", "frame_logits", "frame_log_probs"]
