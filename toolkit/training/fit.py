"""One way to train anything in the toolkit: a plain ``lightning.Trainer`` from recipe kwargs,
with safetensors checkpoints, CSV + TensorBoard logs, a rich progress bar and exact resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from toolkit.training.checkpoint_io import SafetensorsCheckpointIO

LAST = "last.ckpt"


class PeriodicCheckpoint(Callback):
    """Save ``checkpoints/last.ckpt`` every ``every`` optimizer steps and when training ends."""

    def __init__(self, folder: Path, every: int) -> None:
        self.folder = folder
        self.every = max(1, every)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step > 0 and trainer.global_step % self.every == 0:
            trainer.save_checkpoint(self.folder / LAST, weights_only=False)  # full state, to resume

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.folder / LAST, weights_only=False)  # full state, to resume


def make_trainer(work_dir: Path, trainer_kwargs: dict[str, Any] | None, max_steps: int,
                 ckpt_every: int | None = None) -> L.Trainer:
    """A Trainer with the recipe's kwargs plus our checkpointing, logging and progress bar."""
    kwargs = dict(trainer_kwargs or {})
    kwargs["max_steps"] = max_steps
    kwargs.setdefault("max_epochs", -1)
    kwargs.setdefault("num_sanity_val_steps", 0)
    kwargs.setdefault("log_every_n_steps", max(1, min(10, max_steps // 10)))
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("logger", [CSVLogger(work_dir, name="logs", version="csv"),
                                 TensorBoardLogger(work_dir, name="logs", version="tensorboard")])
    kwargs["enable_checkpointing"] = False  # Lightning's ModelCheckpoint pickles; ours does not
    callbacks = list(kwargs.pop("callbacks", None) or [])
    every = ckpt_every or max(1, max_steps // 4)
    callbacks.append(PeriodicCheckpoint(work_dir / "checkpoints", every))
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(RichProgressBar(leave=True))
    plugins = list(kwargs.pop("plugins", None) or [])
    plugins.append(SafetensorsCheckpointIO())
    return L.Trainer(callbacks=callbacks, plugins=plugins, **kwargs)


def fit(module: L.LightningModule, train_loader: Any, work_dir: str | Path,
        trainer_kwargs: dict[str, Any] | None = None, *, max_steps: int,
        val_loader: Any = None, ckpt_every: int | None = None) -> L.Trainer:
    """Train ``module`` for ``max_steps`` optimizer steps, resuming from ``work_dir`` if a
    checkpoint is there (model, optimizer, scheduler, loop position and, when the loader has
    ``state_dict``/``load_state_dict``, the data position)."""
    torch.set_flush_denormal(True)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(work_dir, trainer_kwargs, max_steps, ckpt_every)
    last = work_dir / "checkpoints" / LAST
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if last.is_file() else None)
    return trainer
