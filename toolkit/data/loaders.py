"""Audio + transcript datasets that survive bad files, and a loader that resumes mid-epoch.

Bad input is found up front (a scan of every entry) and again at load time; either way the
entry is skipped, counted and listed in a JSON report, or, in ``strict`` mode, the run stops
with one line naming the file. A batch never fails because of one file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from toolkit.data.audio import AudioError, audio_info, load_audio, torch_threads
from toolkit.data.sampler import TokenBudgetBatchSampler
from toolkit.errors import ToolkitError
from toolkit.io import read_jsonl, write_json


class BadFileReport:
    """Bad entries by reason, written as JSON to ``path`` (if given) whenever it changes."""

    def __init__(self, path: str | Path | None = None, strict: bool = False) -> None:
        self.path = Path(path) if path else None
        self.strict = strict
        self.files: list[dict[str, Any]] = []
        self.notes: dict[str, int] = {}
        self.total = 0
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, entry_id: str, path: str, reason: str, detail: str) -> None:
        if self.strict:
            raise ToolkitError(f"{detail} [strict data mode: set strict: false to skip bad files]")
        with self._lock:
            if (entry_id, reason) not in self._seen:
                self._seen.add((entry_id, reason))
                self.files.append({"id": entry_id, "path": path, "reason": reason,
                                   "detail": detail})

    def note(self, what: str) -> None:
        with self._lock:
            self.notes[what] = self.notes.get(what, 0) + 1

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f["reason"]] = out.get(f["reason"], 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "skipped": len(self.files), "by_reason": self.by_reason(),
                "converted": dict(sorted(self.notes.items())), "files": self.files}

    def write(self) -> None:
        if self.path is not None:
            write_json(self.path, self.as_dict())


class AudioTextDataset(Dataset):
    """Utterances of a manifest as ``{"wav": [T], "text", "speaker", "id"}`` items.

    ``entries`` are manifest rows (or the path of a JSONL manifest) with ``id``,
    ``audio_filepath`` (relative to ``root`` or absolute) and ``text``. ``check``: ``"full"``
    decodes every file during the scan (finds truncation and NaNs before training),
    ``"header"`` reads headers only. :attr:`lengths` are sizes in samples at ``sample_rate``.
    """

    def __init__(self, entries: Sequence[dict[str, Any]] | str | Path, root: str | Path,
                 sample_rate: int, max_seconds: float | None = None, min_seconds: float = 0.0,
                 strict: bool = False, report: BadFileReport | str | Path | None = None,
                 check: Literal["full", "header"] = "full", require_text: bool = True,
                 workers: int = 2) -> None:
        self.root, self.sample_rate = Path(root), sample_rate
        self.max_seconds, self.min_seconds = max_seconds, min_seconds
        self.report = report if isinstance(report, BadFileReport) else BadFileReport(report, strict)
        rows = self._read(entries)
        self.report.total += len(rows)
        with ThreadPoolExecutor(max(1, workers)) as pool, torch_threads(1):
            scanned = list(pool.map(lambda row: self._scan(row, check, require_text), rows))
        self.entries = [row for row, n in zip(rows, scanned) if n is not None]
        self.lengths = [n for n in scanned if n is not None]
        self.report.write()

    def _read(self, entries: Sequence[dict[str, Any]] | str | Path) -> list[dict[str, Any]]:
        if not isinstance(entries, (str, Path)):
            return list(entries)
        errors: list[dict[str, Any]] = []
        rows = read_jsonl(entries, None if self.report.strict else errors)
        for err in errors:
            self.report.add(f"line {err['line']}", err["path"], err["reason"],
                            f"{err['path']}: {err['detail']}")
        self.report.total += len(errors)
        return rows

    def _scan(self, row: dict[str, Any], check: str, require_text: bool) -> int | None:
        """Samples at ``sample_rate`` of a usable entry, or None after reporting why not."""
        uid = str(row.get("id", row.get("audio_filepath", "?")))
        rel = row.get("audio_filepath")
        if not rel:
            self.report.add(uid, "", "missing_path", f"entry {uid}: no audio_filepath")
            return None
        path = self.root / str(rel)
        text = row.get("text")
        if require_text and (not isinstance(text, str) or not text.strip()):
            self.report.add(uid, str(path), "missing_transcript", f"{path}: no transcript")
            return None
        try:
            frames, rate, channels = audio_info(path)
            if check == "full":
                frames = load_audio(path, rate, self.max_seconds).numel()
            seconds = frames / rate
            if frames == 0:
                raise AudioError(path, "empty", "audio file holds no samples")
            if self.max_seconds is not None and seconds > self.max_seconds:
                raise AudioError(path, "too_long", f"audio is {seconds:.1f} s, longer than the "
                                                   f"limit of {self.max_seconds:g} s")
            if seconds < self.min_seconds:
                raise AudioError(path, "too_short", f"audio is {seconds:.3f} s, shorter than "
                                                    f"{self.min_seconds:g} s")
        except AudioError as err:
            self.report.add(uid, str(path), err.reason, str(err))
            return None
        if rate != self.sample_rate:
            self.report.note("resampled")
        if channels > 1:
            self.report.note("downmixed")
        return round(frames * self.sample_rate / rate)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.entries[index]
        path = self.root / str(row["audio_filepath"])
        item = {"id": str(row.get("id", row["audio_filepath"])), "text": row.get("text") or "",
                "speaker": str(row.get("speaker", ""))}
        try:
            item["wav"] = load_audio(path, self.sample_rate, self.max_seconds)
        except AudioError as err:  # changed since the scan: skip, never crash the epoch
            item["error"] = {"id": item["id"], "path": str(path), "reason": err.reason,
                             "detail": str(err)}
        return item


def collate_audio(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Items -> ``{"wav": [B,T] float (zero padded), "lengths": [B] long, "text", "speaker",
    "id": list[str], "skipped": list[dict]}``; items that failed to load go to ``skipped``."""
    good = [it for it in items if "wav" in it]
    sizes = [it["wav"].numel() for it in good]
    # numpy, not torch: tiny torch ops enter the OpenMP pool, which on a busy machine made
    # collation ten times slower
    wav = np.zeros((len(good), max(sizes, default=0)), dtype=np.float32)
    for row, it in enumerate(good):
        wav[row, :sizes[row]] = it["wav"].numpy()
    return {"wav": torch.from_numpy(wav), "lengths": torch.tensor(sizes, dtype=torch.long),
            "text": [it["text"] for it in good], "speaker": [it["speaker"] for it in good],
            "id": [it["id"] for it in good],
            "skipped": [it["error"] for it in items if "error" in it]}


class CountingLoader:
    """A DataLoader over a :class:`TokenBudgetBatchSampler` that counts the batches it hands
    out and its epochs itself, so its position can be saved.

    ``state_dict()``/``load_state_dict()`` record the epoch and the batches *consumed* (not
    merely prefetched by workers), so Lightning's checkpoint resumes mid-epoch at the next
    unseen batch; after the last batch of an epoch it moves on to the next epoch by itself.
    Load-time failures are added to the ``report``; batches left empty by them
    are skipped. Deliberately not a DataLoader subclass: Lightning then leaves it as it is
    instead of injecting a DistributedSampler (the sampler shards by rank itself).

    The LM stages use :class:`toolkit.speech_lm.data.SamplerStateLoader` instead, whose state
    is its batch sampler's: their loaders have no workers (so what the sampler handed out is
    what was consumed), no bad files, and a sampler that must read its rank only once
    iteration starts (after the Trainer set up DDP), which this loader's counting would need
    at construction. Both give the same batch order from the same sampler.
    """

    def __init__(self, dataset: Dataset, sampler: TokenBudgetBatchSampler, num_workers: int = 0,
                 collate_fn: Any = collate_audio, report: BadFileReport | None = None,
                 pin_memory: bool = False) -> None:
        self.dataset, self.batch_sampler, self.report = dataset, sampler, report
        self.loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                 collate_fn=collate_fn, pin_memory=pin_memory)
        self.epoch, self.position = sampler.epoch, sampler.position

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.batch_sampler.epoch, self.batch_sampler.position = self.epoch, self.position
        for batch in self.loader:
            self.position += 1
            skipped = batch.pop("skipped", []) if isinstance(batch, dict) else []
            if skipped and self.report is not None:
                for err in skipped:
                    self.report.add(err["id"], err["path"], err["reason"], err["detail"])
                self.report.write()
            if isinstance(batch, dict) and "wav" in batch and batch["wav"].shape[0] == 0:
                continue
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Jump to the start of ``epoch``. Lightning does not call this (there is no
        ``.sampler`` for it to find): the loader counts its own epochs, so the data order
        depends only on how many batches were consumed, which is what makes resume exact
        even from a checkpoint Lightning wrote after ``max_steps`` ended an epoch early."""
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def state_dict(self) -> dict[str, Any]:
        return {**self.batch_sampler.state_dict(), "epoch": self.epoch,
                "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_sampler.load_state_dict(state)
        self.epoch, self.position = self.batch_sampler.epoch, self.batch_sampler.position


__all__ = ["AudioTextDataset", "BadFileReport", "CountingLoader", "collate_audio"]
