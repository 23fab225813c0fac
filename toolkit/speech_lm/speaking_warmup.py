"""Teach the speech branch to read text aloud: text-to-speech on the branch alone.

An LM stage gives the speech branch a few hundred mixed steps, of which a quarter are
text-to-speech; on the moss_full corpus the branch then speaks no name at all. Trained alone
on text-to-speech it learns far faster: the frozen part of the model below the split point is
run once per utterance (its hidden states at the split point are kept), after which a step costs
only the branch (about 1 s for 32 utterances on a 2-core CPU, against 6-8 s for an LM step).

Used by the LM stages (``speaking_warmup: N``) after the stage's data is built, and by the quick
speaking probe (``benchmarks/speaking_probe.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.training.schedule import adamw

BranchItem = tuple[Tensor, Tensor, Tensor, Tensor]
"""One example at the split point: ``(hidden[n, D], positions[n], visible[n], labels[n])``."""

BATCH = 32
"""Utterances per training step."""


def length_groups(lengths: Sequence[int], spread: float = 2.0) -> list[list[int]]:
    """Indices of ``lengths`` in ascending order of length, grouped so that a group's longest is
    at most ``spread`` times its shortest: padded to its own longest, a group is mostly real
    positions (word-by-word items range from 4 to ~90 positions)."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if groups and lengths[i] <= spread * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@torch.no_grad()
def split_states(model: nn.Module, examples: Sequence[dict], precision: torch.dtype | None,
                 batch_size: int = 64) -> list[BranchItem]:
    """Each example's hidden states at the split point, its attention positions and visibility,
    and its speech targets (``labels`` with every non-speech target set to -100), in the order
    of ``examples`` (they are run in batches of similar length, which changes no state).

    The states are caught where they enter the speech branch, with the positions and visibility
    that branch sees, so compression, adapters and the speech reader act exactly as in the
    model's own forward."""
    from toolkit.speech_lm.data import collate
    from toolkit.speech_lm.layout import SPEECH

    caught: dict = {}
    first = model.branches["speech"].layers[0]
    hook = first.register_forward_pre_hook(lambda _m, args: caught.update(x=args[0], ctx=args[1]))
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    out: list = [None] * len(examples)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = collate([examples[i] for i in chunk], model.tokens, model.text_tokenizer.pad_id)
            with torch.autocast("cpu", dtype=precision, enabled=precision is not None):
                model.forward_hidden(batch["input_ids"], ("speech",))
            ctx = caught["ctx"]
            for row, i in enumerate(chunk):
                e, n = examples[i], len(examples[i]["input_ids"])
                visible = ctx.key_padding[row, :n] if ctx.key_padding is not None else torch.ones(n, dtype=torch.bool)
                labels = torch.where(e["target_modality"] == SPEECH, e["labels"], -100)
                out[i] = (caught["x"][row, :n].clone(), ctx.positions[row, :n].clone(), visible.clone(), labels)
    finally:
        hook.remove()
    return out


def branch_loss(model: nn.Module, items: Sequence[BranchItem], precision: torch.dtype | None) -> Tensor:
    """Mean cross-entropy of the speech branch and head over the speech targets of ``items``:
    the loss of one right-padded batch, computed in :func:`length_groups` (each group padded to
    its own longest item, so a batch of short words with one long item is not all padding)."""
    total, count = torch.zeros(()), 0
    for group in length_groups([len(item[3]) for item in items]):
        logits, targets = _branch_logits(model, [items[i] for i in group], precision)
        total = total + F.cross_entropy(logits.float(), targets, reduction="sum")
        count += len(targets)
    return total / count


def _branch_logits(model: nn.Module, items: Sequence[BranchItem],
                   precision: torch.dtype | None) -> tuple[Tensor, Tensor]:
    """The speech head's ``logits[N, V]`` at the ``N`` speech targets of ``items`` (right-padded
    into one batch), and those ``targets[N]``."""
    from toolkit.nn.context import AttentionContext

    length, dim = max(len(i[3]) for i in items), items[0][0].shape[1]
    x = torch.zeros(len(items), length, dim, dtype=items[0][0].dtype)
    positions = torch.ones(len(items), length, dtype=torch.long)
    visible = torch.zeros(len(items), length, dtype=torch.bool)
    labels = torch.full((len(items), length), -100, dtype=torch.long)
    for i, (h, p, v, lab) in enumerate(items):
        n = len(lab)
        x[i, :n], positions[i, :n], visible[i, :n], labels[i, :n] = h, p, v, lab
    branch = model.branches["speech"]
    with torch.autocast("cpu", dtype=precision, enabled=precision is not None):
        ctx = AttentionContext(positions, visible, model.rotary(positions, dtype=x.dtype))
        for block in branch.layers:
            x = block(x, ctx, kv=None)
        scored = labels >= 0
        logits = branch.head(branch.norm(x[scored]))
    return logits, labels[scored]


@torch.no_grad()
def mean_branch_loss(model: nn.Module, items: Sequence[BranchItem], precision: torch.dtype | None) -> float:
    """:func:`branch_loss` over ``items`` in batches, weighted by batch size."""
    return sum(float(branch_loss(model, items[s:s + BATCH], precision)) * len(items[s:s + BATCH])
               for s in range(0, len(items), BATCH)) / len(items)


def dropped_speech_inputs(item: BranchItem, rate: float, gen: torch.Generator) -> BranchItem:
    """``item`` with the split-point state of each input speech code (a position that predicts
    speech and follows one that did) zeroed with probability ``rate``, so the branch must say a
    word from its text more than from the codes before it. Text inputs are never touched."""
    hidden, positions, visible, labels = item
    speaks = labels >= 0
    is_code = speaks & torch.cat([speaks.new_zeros(1), speaks[:-1]])
    drop = is_code & (torch.rand(len(labels), generator=gen) < rate)
    return hidden.masked_fill(drop[:, None], 0.0), positions, visible, labels


def train_branch(model: nn.Module, items: Sequence[BranchItem], steps: int, lr: float,
                 precision: torch.dtype | None, seed: int,
                 on_step: Callable[[int, float], None] | None = None, input_dropout: float = 0.0) -> float:
    """AdamW on the speech branch and head only (warmup, cosine to 0.1 ``lr``), ``BATCH``
    random items a step, their speech inputs dropped at ``input_dropout``
    (:func:`dropped_speech_inputs`); ``on_step(step, loss)`` after each. Returns the mean loss
    of the last 10 % of the steps. Every parameter's ``requires_grad`` is as before on return."""
    before = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.branches["speech"].parameters())
    for p in params:
        p.requires_grad_(True)
    opt = adamw(params, lr=lr, betas=(0.9, 0.95))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    rng, tail, pool = random.Random(seed), [], list(items)
    gen = torch.Generator().manual_seed(seed)
    try:
        for step in range(steps):
            batch = rng.sample(pool, min(BATCH, len(pool)))
            if input_dropout > 0:
                batch = [dropped_speech_inputs(item, input_dropout, gen) for item in batch]
            loss = branch_loss(model, batch, precision)
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
    finally:
        opt.zero_grad(set_to_none=True)
        for p, flag in before.items():
            p.requires_grad_(flag)
    return sum(tail) / max(len(tail), 1)


__all__ = ["BranchItem", "dropped_speech_inputs", "length_groups", "split_states", "branch_loss", "mean_branch_loss", "train_branch"]
