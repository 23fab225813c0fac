"""A LightningDataModule of audio batches over a manifest: token-budget batches, resumable
position, DDP sharding and a bad-file report per split in the run folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch

from toolkit.data.loaders import AudioTextDataset, BadFileReport, CountingLoader
from toolkit.data.sampler import TokenBudgetBatchSampler
from toolkit.io import read_jsonl


class AudioDataModule(L.LightningDataModule):
    """Batches ``{"wav": [B,T], "lengths": [B], "text", "speaker", "id"}`` from a manifest.

    ``batch_seconds`` is the padded audio per batch (the token budget in seconds); rows are
    taken from ``train_split`` / ``val_split`` (and ``tasks`` if given). Reports go to
    ``report_dir/bad_files_<split>.json``.
    """

    def __init__(self, manifest: str | Path | Sequence[dict[str, Any]], root: str | Path,
                 sample_rate: int, batch_seconds: float = 20.0, train_split: str = "train",
                 val_split: str | None = "val", tasks: Sequence[str] | None = None,
                 max_seconds: float | None = 30.0, min_seconds: float = 0.05,
                 strict: bool = False, report_dir: str | Path | None = None,
                 num_workers: int = 0, seed: int = 0, bucket_size: int = 64,
                 check: Literal["full", "header"] = "full") -> None:
        super().__init__()
        self.manifest, self.root, self.sample_rate = manifest, Path(root), sample_rate
        self.max_tokens = max(1, int(batch_seconds * sample_rate))
        self.splits = {"train": train_split, "val": val_split}
        self.tasks = set(tasks) if tasks else None
        self.max_seconds, self.min_seconds, self.strict = max_seconds, min_seconds, strict
        self.report_dir = Path(report_dir) if report_dir else None
        self.num_workers, self.seed, self.bucket_size, self.check = (num_workers, seed,
                                                                     bucket_size, check)
        self.datasets: dict[str, AudioTextDataset] = {}

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        errors: list[dict[str, Any]] = []
        if isinstance(self.manifest, (str, Path)):
            rows = read_jsonl(self.manifest, None if self.strict else errors)
        else:
            rows = list(self.manifest)
        for which, split in self.splits.items():
            if split is None:
                continue
            report = BadFileReport(self.report_dir / f"bad_files_{which}.json"
                                   if self.report_dir else None, self.strict)
            if which == "train":
                for err in errors:
                    report.add(f"line {err['line']}", err["path"], err["reason"],
                               f"{err['path']}: {err['detail']}")
                report.total += len(errors)
            picked = [r for r in rows if r.get("split", "train") == split
                      and (self.tasks is None or r.get("task") in self.tasks)]
            self.datasets[which] = AudioTextDataset(
                picked, self.root, self.sample_rate, self.max_seconds, self.min_seconds,
                self.strict, report, self.check)

    def _loader(self, which: str, shuffle: bool) -> CountingLoader:
        self.setup()
        dataset = self.datasets[which]
        rank, world = self._rank()
        sampler = TokenBudgetBatchSampler(dataset.lengths, self.max_tokens, self.seed, shuffle,
                                          rank, world, self.bucket_size)
        return CountingLoader(dataset, sampler, self.num_workers, report=dataset.report)

    def train_dataloader(self) -> CountingLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> CountingLoader | list:
        return self._loader("val", shuffle=False) if "val" in self.datasets else []


__all__ = ["AudioDataModule"]
