"""What every attention layer of one forward pass shares: positions, key padding, RoPE tables."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from toolkit.errors import ToolkitError


@dataclass
class AttentionContext:
    """Per-forward attention inputs, computed once and passed to every block.

    Attributes:
        positions: ``[B,L]`` long, absolute positions of the new tokens (real tokens counted
            from 0 in each row, so left padding does not shift them).
        key_padding: ``[B,S]`` bool (True = real key) with ``S = cached + L``, or None when
            every key is real.
        rope: ``(cos, sin)`` each ``[B,L,head_dim]`` for ``positions``.
    """

    positions: Tensor
    key_padding: Tensor | None
    rope: tuple[Tensor, Tensor]


def positions_and_padding(input_ids: Tensor, attention_mask: Tensor | None,
                          past: int) -> tuple[Tensor, Tensor | None]:
    """Positions ``[B,L]`` and key padding ``[B,S]`` for ``L`` new tokens after ``past`` cached.

    ``attention_mask[B,S]`` (1 = real token; ``S = past + L``, or ``L`` when ``past`` is 0)
    gives positions ``cumsum - 1`` like Hugging Face (padding slots get position 1). Without a
    mask every key is real and positions run ``past .. past + L - 1``.
    """
    batch, new = input_ids.shape
    if attention_mask is None:
        pos = torch.arange(past, past + new, device=input_ids.device)
        return pos.expand(batch, new), None
    if attention_mask.shape != (batch, past + new):
        raise ToolkitError(f"attention_mask has shape {tuple(attention_mask.shape)}; expected "
                           f"({batch}, {past + new}) for {past} cached + {new} new tokens")
    real = attention_mask.bool()
    pos = (real.long().cumsum(-1) - 1)[:, -new:]
    pos = pos.masked_fill(~real[:, -new:], 1)
    return pos, (None if bool(real.all()) else real)


__all__ = ["AttentionContext", "positions_and_padding"]
