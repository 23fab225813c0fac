"""A generic LightningModule that trains any :class:`toolkit.contracts.Trainable` component.

Each step calls ``component.training_losses(batch)`` and optimises ``"loss"``; every other
scalar it returns is logged (``train/NAME``, ``val/NAME``). ``prepare`` may turn a loader batch
into the component's batch (e.g. add codes from a frozen tokenizer); it is not a submodule,
so it is neither trained nor checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor

from toolkit.contracts import Trainable
from toolkit.training.schedule import adamw, warmup_cosine


class ComponentModule(L.LightningModule):
    """Trains ``component`` with AdamW, linear warmup and cosine decay to ``min_lr_ratio * lr``."""

    def __init__(self, component: torch.nn.Module, lr: float = 3e-4, max_steps: int = 1000,
                 warmup_steps: int = 0, weight_decay: float = 0.0, min_lr_ratio: float = 0.1,
                 grad_clip: float | None = 1.0,
                 prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__()
        if not isinstance(component, Trainable):
            raise TypeError(f"{type(component).__name__} does not implement training_losses")
        self.component = component
        self.lr, self.max_steps, self.warmup_steps = lr, max_steps, warmup_steps
        self.weight_decay, self.min_lr_ratio, self.grad_clip = weight_decay, min_lr_ratio, grad_clip
        self._prepare = [prepare] if prepare else []

    def _losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        for fn in self._prepare:
            batch = fn(batch)
        losses = self.component.training_losses(batch)
        if "loss" not in losses:
            raise KeyError(f"{type(self.component).__name__}.training_losses returned no 'loss'")
        return losses

    def _log(self, prefix: str, losses: dict[str, Tensor], batch_size: int) -> None:
        scalars = {f"{prefix}/{k}": v.detach().float() for k, v in losses.items()
                   if isinstance(v, Tensor) and v.numel() == 1}
        self.log_dict(scalars, batch_size=batch_size, on_step=prefix == "train",
                      on_epoch=prefix == "val")
        self.log(f"{prefix}_loss", losses["loss"].detach(), prog_bar=True, batch_size=batch_size,
                 logger=False)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self._losses(batch)
        self._log("train", losses, len(batch.get("text", [])) or 1)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log("val", self._losses(batch), len(batch.get("text", [])) or 1)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.component.parameters(), self.grad_clip)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.component.parameters() if p.requires_grad]
        opt = adamw(params, lr=self.lr, weight_decay=self.weight_decay, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine(self.warmup_steps, self.max_steps, self.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


__all__ = ["ComponentModule"]
