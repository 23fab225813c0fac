"""Block-by-block streaming for speech tokenizers whose encoder is block-causal.

A subclass says how to start (:meth:`BlockStream.reset`) and how to encode one block of samples
(:meth:`BlockStream.run`); buffering, flushing and the one-stream view are shared, so a
tokenizer's offline ``encode`` and its streaming encoder can run the very same steps.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit.contracts import StreamingEncoder


class BlockStream(ABC):
    """Encodes a batch of streams ``[B, T]`` in blocks of ``block`` samples.

    ``push(wav[B,T_chunk]) -> codes[B,L_chunk]`` encodes every complete block; ``flush()``
    zero-pads the remainder to whole tokens of ``samples_per_token``, encodes it, and resets.
    """

    def __init__(self, batch: int, block: int, samples_per_token: int, device: torch.device) -> None:
        self.batch, self.block, self.samples_per_token, self.device = batch, block, samples_per_token, device
        self.pending = torch.zeros(batch, 0, device=device)
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget all history (the start of a new utterance)."""

    @abstractmethod
    def run(self, samples: Tensor) -> Tensor:
        """``samples[B, n]`` (a block, or the padded tail) -> ``codes[B, n // samples_per_token]``."""

    def _empty(self) -> Tensor:
        return torch.zeros(self.batch, 0, dtype=torch.long, device=self.device)

    def push(self, wav: Tensor) -> Tensor:
        self.pending = torch.cat([self.pending, wav.float().to(self.device)], 1)
        out = [self._empty()]
        while self.pending.shape[1] >= self.block:
            out.append(self.run(self.pending[:, : self.block]))
            self.pending = self.pending[:, self.block:]
        return torch.cat(out, 1)

    def flush(self) -> Tensor:
        n = self.pending.shape[1]
        codes = self._empty()
        if n:
            whole = math.ceil(n / self.samples_per_token) * self.samples_per_token
            codes = self.run(F.pad(self.pending, (0, whole - n)))
        self.pending = self.pending[:, :0]
        self.reset()
        return codes


class SingleStream(StreamingEncoder):
    """One stream over a batch-of-one :class:`BlockStream`: ``push(wav[T]) -> codes[L]``."""

    def __init__(self, inner: BlockStream) -> None:
        self.inner = inner

    def push(self, wav: Tensor) -> Tensor:
        return self.inner.push(wav.reshape(1, -1))[0]

    def flush(self) -> Tensor:
        return self.inner.flush()[0]
