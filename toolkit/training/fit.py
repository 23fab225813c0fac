"""One way to train anything in the toolkit: a plain ``lightning.Trainer`` from recipe kwargs,
with safetensors checkpoints, CSV + TensorBoard logs, a rich progress bar counting steps, exact
resume, ``precision: auto`` made for this machine, and a stop by signal that ends as a failure."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from toolkit import timing
from toolkit.machine import resolve_trainer
from toolkit.training.checkpoint_io import SafetensorsCheckpointIO
from toolkit.training.stopping import as_stopped, lightning_handles_signals

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

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        # Lightning raises this at a step boundary, so the state is whole: keep the steps done
        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            trainer.save_checkpoint(self.folder / LAST, weights_only=False)


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar named after the stage and counting steps towards ``max_steps``
    (step-limited training runs one endless epoch, which Lightning showed as "Epoch 0/-2")."""

    def __init__(self, label: str) -> None:
        super().__init__(leave=True)
        self.label = label

    def _get_train_description(self, current_epoch: int) -> str:
        return self.label

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.train_progress_bar_id is None:  # one bar for the stage, not one per epoch
            super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.is_disabled and self.train_progress_bar_id is None:  # resumed mid-epoch
            self._initialize_train_progress_bar_id()
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed  # across epochs
        self._update(self.train_progress_bar_id, done)
        self._update_metrics(trainer, pl_module)

    @property
    def total_train_batches(self) -> int | float:
        trainer = self.trainer
        if trainer.max_steps > 0:
            return trainer.max_steps * trainer.accumulate_grad_batches
        return super().total_train_batches


class PaceReport(Callback):
    """After the first ``warm + measure`` steps, tell the run's :class:`toolkit.timing.JobClock`
    (which prints this stage's pace and the whole job's time left)."""

    def __init__(self, stage: str, warm: int = 1, measure: int = 5) -> None:
        self.stage, self.warm, self.measure = stage, warm, measure
        self.start: float | None = None
        self.start_step = 0

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self.start is None and step >= self.warm:
            self.start, self.start_step = time.perf_counter(), step
        elif self.start is not None and step == self.start_step + self.measure:
            clock = timing.current()
            if clock is not None and trainer.max_steps > 0:
                pace = (time.perf_counter() - self.start) / self.measure
                line = clock.first_steps(self.stage, pace, trainer.max_steps - step)
                progress = getattr(trainer.progress_bar_callback, "progress", None)
                if progress is not None:  # above the live bar, which a plain print would break
                    progress.console.print(line, markup=False, soft_wrap=True)
                else:
                    trainer.print(line)


def make_trainer(work_dir: Path, trainer_kwargs: dict[str, Any] | None, max_steps: int,
                 ckpt_every: int | None = None) -> L.Trainer:
    """A Trainer with the recipe's kwargs (``precision: auto`` made for this machine) plus our
    checkpointing, logging, progress bar and pace report."""
    kwargs = resolve_trainer(trainer_kwargs)
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
    stage = work_dir.name.removesuffix(".partial")
    callbacks.append(PaceReport(stage))
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar(stage))
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
    try:
        with lightning_handles_signals():
            trainer.fit(module, train_loader, val_loader,
                        ckpt_path=str(last) if last.is_file() else None)
    except SystemExit as exc:  # Lightning's way to end after SIGTERM or Ctrl-C
        stopped = as_stopped(exc, trainer.received_sigterm, trainer.global_step)
        if stopped is None:
            raise
        raise stopped from None
    return trainer
