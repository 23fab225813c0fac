"""Teach the speech input to spell before the LM trains: the hearing CTC loss alone.

In an LM stage the hearing CTC loss (:mod:`toolkit.speech_lm.hearing_ctc`) sees a few dozen
utterances per step, far too few for a local speech reader to learn how names sound (on the
moss_full probe, 60 stage I steps left the reader spelling only "The."). This warm-up trains
the parts that make the speech input (speech embedding, code map, reader, adapters) on that
loss alone, on batches of transcribed training utterances, with no trunk pass: hundreds of
steps cost a minute or two. The LM stage then starts from a speech input that already spells.

The cosine classifier runs over the tokens of the training transcripts plus random other
tokens as negatives (the whole 49k vocabulary would cost more than the reader), with the blank
logit of the whole vocabulary, so a frame emits a token at the same cosine as in the LM stage.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.speech_lm.hearing_ctc import speech_log_probs
from toolkit.speech_lm.layout import speech_positions
from toolkit.training.schedule import adamw

NEGATIVES = 2048
"""Random tokens outside the transcripts the classifier also scores."""


def hearing_vocabulary(transcripts: Sequence[Sequence[int]], vocab_size: int, seed: int) -> Tensor:
    """Sorted ids: every token of ``transcripts`` plus up to ``NEGATIVES`` random others."""
    used = {t for ids in transcripts for t in ids}
    rest = sorted(set(range(vocab_size)) - used)
    extra = random.Random(seed).sample(rest, min(NEGATIVES, len(rest)))
    return torch.tensor(sorted(used | set(extra)), dtype=torch.long)


def speech_grid(codes: Sequence[Tensor], tokens, pad_id: int, drop: float, gen: torch.Generator) -> Tensor:
    """``codes`` (a list of ``[n_i]``) -> right-padded grids ``[B, max n_i + 2, 2]``; a
    ``drop`` share of codes replaced by ``speech_pad`` (a regulariser: no one code is relied on)."""
    rows = []
    for c in codes:
        c = torch.as_tensor(c, dtype=torch.long)
        rows.append(speech_positions(c, tokens))
        if drop:
            hit = torch.rand(c.numel(), generator=gen) < drop
            rows[-1][1:-1, 1][hit] = tokens.speech_pad
    grid = torch.zeros(len(rows), max(len(r) for r in rows), 2, dtype=torch.long)
    grid[..., 0], grid[..., 1] = pad_id, tokens.speech_pad
    for i, r in enumerate(rows):
        grid[i, : len(r)] = r
    return grid


def warm_up_hearing(model: nn.Module, pairs: Sequence[tuple[Tensor, list[int]]], steps: int,
                    lr: float = 2e-3, batch_size: int = 32, drop: float = 0.1, seed: int = 0,
                    on_step=None) -> float:
    """Train the speech side on the hearing CTC loss over ``pairs`` of (``codes[n]``,
    transcript text ids) for ``steps`` AdamW steps (warmup then cosine decay of ``lr``).

    ``on_step(step, loss)`` is called after each step. Returns the mean loss of the last 10 %
    of the steps."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    pairs = [(c, t) for c, t in pairs if len(t) and len(c)]
    table = model.embed_tokens.weight
    vocab = hearing_vocabulary([t for _, t in pairs], table.shape[0], seed)
    index = torch.full((table.shape[0],), -1, dtype=torch.long)
    index[vocab] = torch.arange(len(vocab))
    params = [p for _, p in model.parameter_groups()["speech"] if p.requires_grad]
    opt = adamw(params, lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    pad_id = model.text_tokenizer.pad_id
    tail: list[float] = []
    for step in range(steps):
        batch = rng.sample(pairs, min(batch_size, len(pairs)))
        grid = speech_grid([c for c, _ in batch], model.tokens, pad_id, drop, gen)
        is_speech = grid[..., 0] == model.tokens.modality_pad
        log_probs, lengths = speech_log_probs(model.speech_input(grid), is_speech, table[vocab],
                                              blank_logit=math.log(table.shape[0]))
        targets = [index[torch.as_tensor(t)] for _, t in batch]
        loss = F.ctc_loss(log_probs, torch.cat(targets), lengths,
                          torch.tensor([len(t) for t in targets]), blank=len(vocab), zero_infinity=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        if step >= steps - max(1, steps // 10):
            tail.append(value)
        if on_step is not None:
            on_step(step + 1, value)
    opt.zero_grad(set_to_none=True)
    return sum(tail) / len(tail)


__all__ = ["warm_up_hearing", "hearing_vocabulary"]
