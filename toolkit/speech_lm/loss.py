"""Next-token loss of a split model: each target scored by its own modality's head.

The efficient path (:func:`split_lm_losses`) runs only the branches some target needs and
applies each head only at the positions whose target is of its modality (the text head of
a 49k-word vocabulary is the largest matrix of a small trunk). :func:`losses_from_logits`
scores full logits from ``model(...)``; both give the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.speech_lm.layout import BRANCHES, SPEECH, TEXT, SplitOutput

MODALITY = {"text": TEXT, "speech": SPEECH}


def needed_branches(target_modality: Tensor) -> tuple[str, ...]:
    """Branches with at least one target in ``target_modality[B,L]``."""
    present = set(torch.unique(target_modality).tolist())
    return tuple(b for b in BRANCHES if MODALITY[b] in present)


def split_lm_losses(model: nn.Module, batch: dict[str, Tensor], distill_weight: float = 0.0) -> dict[str, Tensor]:
    """Losses of one batch, computing only what the targets need.

    ``batch``: ``input_ids[B,L,2]``, ``labels[B,L]``, ``target_modality[B,L]`` (``TEXT``,
    ``SPEECH`` or ``IGNORE``), optional ``attention_mask[B,L]``, and the teacher grids of
    distillation pairs (:mod:`toolkit.speech_lm.distill`) when it has any.
    Returns ``loss`` (mean over all scored targets, plus ``distill_weight`` times
    ``distill_loss`` when the batch has pairs), and per modality ``{m}_loss``, ``{m}_acc``
    (NaN-free: 0 when absent) and ``{m}_tokens``.
    """
    target = batch["target_modality"]
    branches = needed_branches(target)
    if not branches:
        raise ValueError("batch has no targets")
    hidden = model.forward_hidden(batch["input_ids"], branches, batch.get("attention_mask"))
    scored = {}
    for branch in branches:
        where = target == MODALITY[branch]
        logits = model.head(branch, hidden[branch][where])
        scored[branch] = (logits, batch["labels"][where])
    out = _reduce(scored, target.device)
    if distill_weight and "teacher_ids" in batch and "text" in hidden:
        from toolkit.speech_lm.distill import distillation_loss

        kl = distillation_loss(model, batch, hidden["text"])
        out["distill_loss"] = kl.detach()
        out["loss"] = out["loss"] + distill_weight * kl
    return out


def losses_from_logits(out: SplitOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The same losses from full logits (``out.text_logits[B,L,Vt]`` etc.)."""
    target = batch["target_modality"]
    scored = {}
    for branch in BRANCHES:
        logits = getattr(out, f"{branch}_logits")
        where = target == MODALITY[branch]
        if logits is None:
            if bool(where.any()):
                raise ValueError(f"batch has {branch} targets but the {branch} branch did not run")
            continue
        scored[branch] = (logits[where], batch["labels"][where])
    return _reduce(scored, target.device)


def _reduce(scored: dict[str, tuple[Tensor, Tensor]], device: torch.device) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    total = torch.zeros((), device=device)
    count = 0
    for branch in BRANCHES:
        if branch not in scored:
            zero = torch.zeros((), device=device)
            out.update({f"{branch}_loss": zero, f"{branch}_acc": zero,
                        f"{branch}_tokens": torch.tensor(0, device=device)})
            continue
        logits, labels = scored[branch]
        summed = F.cross_entropy(logits.float(), labels, reduction="sum")
        n = labels.numel()
        total = total + summed
        count += n
        out[f"{branch}_loss"] = summed.detach() / max(n, 1)
        out[f"{branch}_acc"] = (logits.argmax(-1) == labels).float().mean() if n else torch.zeros((), device=device)
        out[f"{branch}_tokens"] = torch.tensor(n, device=device)
    out["loss"] = total / max(count, 1)
    return out


__all__ = ["split_lm_losses", "losses_from_logits", "needed_branches"]
