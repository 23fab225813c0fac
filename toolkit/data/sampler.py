"""Token-budget batching with length bucketing: deterministic, resumable and DDP-sharded.

Batches are packed once from the length-sorted items (ties broken by the seed), so every
batch pads little and the number of batches never changes between epochs (Lightning reads
``len`` once). Each epoch shuffles the order of the batches with ``seed + epoch``; under DDP
the epoch's list is padded to a multiple of ``world_size`` and rank ``r`` takes every
``world_size``-th batch, so all ranks run the same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from toolkit.errors import ToolkitError


class TokenBudgetBatchSampler:
    """Yields lists of dataset indices whose padded size ``len(batch) * max(length)`` stays
    within ``max_tokens`` (an item longer than the budget gets a batch of its own).

    ``lengths[i]`` is item ``i``'s size in any unit (samples, frames, tokens). ``bucket_size``
    is how many neighbours in length order are shuffled together before packing, trading
    padding for variety (1: strictly sorted). :meth:`state_dict` records the epoch and how many
    batches this rank consumed; :meth:`load_state_dict` continues from there.
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 bucket_size: int = 64, max_batch_size: int | None = None) -> None:
        if max_tokens <= 0:
            raise ToolkitError(f"max_tokens must be positive, got {max_tokens}")
        if not 0 <= rank < world_size:
            raise ToolkitError(f"rank {rank} outside world_size {world_size}")
        self.lengths = [int(n) for n in lengths]
        self.max_tokens, self.seed, self.shuffle = int(max_tokens), int(seed), shuffle
        self.rank, self.world_size = rank, world_size
        self.bucket_size, self.max_batch_size = max(1, bucket_size), max_batch_size
        self.epoch = 0
        self.position = 0
        """Batches of the current epoch this rank has handed out."""
        self.batches = self._pack()

    def _pack(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(self.lengths), generator=g).tolist() if self.shuffle \
            else list(range(len(self.lengths)))
        order.sort(key=lambda i: self.lengths[i])
        if self.shuffle and self.bucket_size > 1:  # mix neighbours of similar length
            for start in range(0, len(order), self.bucket_size):
                chunk = order[start:start + self.bucket_size]
                perm = torch.randperm(len(chunk), generator=g).tolist()
                order[start:start + self.bucket_size] = [chunk[j] for j in perm]
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for i in order:
            n = max(self.lengths[i], 1)
            full = self.max_batch_size is not None and len(batch) >= self.max_batch_size
            if batch and (full or max(longest, n) * (len(batch) + 1) > self.max_tokens):
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, n)
        if batch:
            batches.append(batch)
        return batches

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        batches = list(self.batches)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 1)
            batches = [batches[j] for j in torch.randperm(len(batches), generator=g).tolist()]
        if not batches:
            return []
        pad = -len(batches) % self.world_size
        batches += batches[:pad]
        return batches[self.rank::self.world_size]

    def __len__(self) -> int:
        return -(-len(self.batches) // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start; a different epoch restarts at its beginning."""
        if epoch != self.epoch:
            self.epoch, self.position = epoch, 0

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        start = self.position
        for k in range(start, len(batches)):
            self.position = k + 1
            yield batches[k]
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_batches": len(self.batches), "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("num_batches") != len(self.batches) or state.get("seed") != self.seed:
            raise ToolkitError(
                f"cannot resume the data position: the checkpoint's sampler had "
                f"{state.get('num_batches')} batches with seed {state.get('seed')}, this one has "
                f"{len(self.batches)} with seed {self.seed} (did the corpus or max_tokens change?)")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


__all__ = ["TokenBudgetBatchSampler"]
