"""Causal language-model training of a trunk on text (the tiny recipe's trunk pretraining)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from toolkit.contracts import Trunk
from toolkit.training.schedule import warmup_cosine


class TextLMModule(L.LightningModule):
    """Next-token cross-entropy on packed blocks ``ids[B, L]`` of a :class:`Trunk`."""

    def __init__(self, trunk: Trunk, lr: float, warmup: int, max_steps: int,
                 weight_decay: float = 0.1) -> None:
        super().__init__()
        self.trunk = trunk
        self.lr, self.warmup, self.max_steps, self.weight_decay = lr, warmup, max_steps, weight_decay

    def training_step(self, batch: tuple[Tensor], _: int) -> Tensor:
        (ids,) = batch
        loss = lm_loss(self.trunk(ids[:, :-1]), ids[:, 1:])
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.trunk.parameters(), lr=self.lr, betas=(0.9, 0.95),
                                weight_decay=self.weight_decay)
        # at least one warmup step and two steps in all; decay to 10 %, cosine in float32
        schedule = warmup_cosine(max(1, self.warmup), max(2, self.max_steps), 0.1,
                                 float32_cosine=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def lm_loss(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean cross-entropy of ``logits[B,L,V]`` against ``targets[B,L]``."""
    return F.cross_entropy(rearrange(logits.float(), "b l v -> (b l) v"),
                           rearrange(targets, "b l -> (b l)"), ignore_index=ignore_index)


def packed_blocks(documents: list[list[int]], block_size: int, separator: int) -> Tensor:
    """Concatenate token lists (each followed by ``separator``) and cut ``[N, block_size + 1]``
    blocks (inputs and shifted targets); the remainder is dropped."""
    stream = [t for doc in documents for t in (*doc, separator)]
    n = len(stream) // (block_size + 1)
    if n == 0:
        raise ValueError(f"only {len(stream)} tokens: fewer than one block of {block_size + 1}")
    return rearrange(torch.tensor(stream[: n * (block_size + 1)]), "(n l) -> n l", n=n)


def block_loader(blocks: Tensor, batch_size: int, seed: int) -> DataLoader:
    """Shuffled batches of packed blocks, reproducible from ``seed``."""
    return DataLoader(TensorDataset(blocks), batch_size=batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))
