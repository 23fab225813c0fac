"""The Lightning module of the LM stages (stage I, stage II, SFT).

What trains is chosen by *side*: ``speech`` (speech embedding, speech branch and head) and
``text`` (text embedding, shared blocks, text branch and head). Parameters of a side that does
not train get ``requires_grad=False`` (so autograd computes no weight gradients for them) and
are left out of the optimizer, which is what keeps stage I's text path bit-identical. Parts of a
training side can be held too (``frozen`` name prefixes).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
from torch import Tensor, nn

from toolkit.errors import ToolkitError
from toolkit.speech_lm.hearing_ctc import hearing_ctc_loss
from toolkit.speech_lm.loss import split_lm_losses
from toolkit.training.schedule import adamw, warmup_cosine

SIDES = ("text", "speech")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr`` at ``max_steps``."""

    lr: float = 3e-4
    """Learning rate of the speech side."""
    text_lr: float | None = None
    """Learning rate of the text side (None: ``lr``)."""
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    warmup: int = 0
    max_steps: int = 1000
    min_lr_ratio: float = 0.1


def set_trainable(model: nn.Module, sides: tuple[str, ...],
                  frozen: tuple[str, ...] = ()) -> dict[str, list[nn.Parameter]]:
    """Freeze every parameter not on one of ``sides``, and every one whose name starts with
    one of the ``frozen`` prefixes (e.g. ``speech_reader.``); return the trainable ones by side."""
    unknown = set(sides) - set(SIDES)
    if unknown:
        raise ToolkitError(f"unknown trainable side '{sorted(unknown)[0]}'; sides: text, speech")
    groups = model.parameter_groups()
    names = [n for named in groups.values() for n, _ in named]
    for prefix in frozen:
        if not any(n.startswith(prefix) for n in names):
            raise ToolkitError(f"frozen: '{prefix}' names no parameter of the model; names start with "
                               + ", ".join(sorted({n.split('.')[0] + '.' for n in names})))
    out: dict[str, list[nn.Parameter]] = {}
    for side, named in groups.items():
        for name, p in named:
            p.requires_grad_(side in sides and not name.startswith(tuple(frozen)))
        if side in sides:
            out[side] = [p for _, p in named if p.requires_grad]
    return out


class SplitLMModule(L.LightningModule):
    """Trains a split model's ``trainable`` sides on batches of examples
    (``input_ids[B,L,2]``, ``labels[B,L]``, ``target_modality[B,L]``)."""

    def __init__(self, model: nn.Module, optim: OptimConfig, trainable: tuple[str, ...] = SIDES,
                 distill_weight: float = 0.0, hearing_ctc: float = 0.0,
                 frozen: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.model = model
        self.optim = optim
        self.trainable = tuple(trainable)
        self.distill_weight = distill_weight
        self.hearing_ctc = hearing_ctc
        self.frozen = tuple(frozen)
        set_trainable(model, self.trainable, self.frozen)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        losses = split_lm_losses(self.model, batch, self.distill_weight)
        if self.hearing_ctc:
            ctc = hearing_ctc_loss(self.model, batch)
            if ctc is not None:
                losses["ctc_loss"] = ctc.detach()
                losses["loss"] = losses["loss"] + self.hearing_ctc * ctc
        return losses

    def _log_losses(self, prefix: str, losses: dict[str, Tensor], batch: dict[str, Tensor]) -> None:
        n = int((batch["target_modality"] >= 0).sum())
        on_step = prefix == "train"
        self.log(f"{prefix}/loss", losses["loss"].detach(), prog_bar=True, batch_size=n,
                 on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
        for extra in ("distill_loss", "ctc_loss"):
            if extra in losses:
                self.log(f"{prefix}/{extra}", losses[extra], batch_size=n,
                         on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
        for branch in SIDES:
            count = int(losses[f"{branch}_tokens"])
            if count:
                for key in ("loss", "acc"):
                    self.log(f"{prefix}/{branch}_{key}", losses[f"{branch}_{key}"], batch_size=count,
                             on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses = self(batch)
        self._log_losses("train", losses, batch)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._log_losses("val", self(batch), batch)

    def configure_optimizers(self):
        groups = []
        params = set_trainable(self.model, self.trainable, self.frozen)
        for side in SIDES:
            if side in params and params[side]:
                lr = self.optim.lr if side == "speech" else (self.optim.text_lr or self.optim.lr)
                groups.append({"params": params[side], "lr": lr, "name": side})
        if not groups:
            raise ToolkitError("nothing to train: no parameter is trainable in this stage")
        opt = adamw(groups, betas=self.optim.betas, weight_decay=self.optim.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine(self.optim.warmup, self.optim.max_steps, self.optim.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


__all__ = ["OptimConfig", "SplitLMModule", "set_trainable", "SIDES"]
