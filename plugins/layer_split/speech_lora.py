"""Low-rank adapters on the shared blocks that act on speech positions only.

A frozen trunk reads speech embeddings with weights made for text; a speech side of only an
embedding table (and a few adapter blocks) gives it little room to turn 80 ms codes into
words. These adapters add ``(alpha / r) * B[out, r] @ A[r, in]`` to chosen linears of every
shared block, but only at positions whose text channel holds ``modality_pad`` (speech). Text
positions get the frozen linear's output bit for bit, so a text-only input is untouched; text
positions still read speech positions' (adapted) keys and values, which is how the text side
hears. ``B`` starts at zero: the model is unchanged until they train.

The adapters live in their own module (``speech_lora.{layer}_{linear}.{a,b}``) and reach the
blocks through forward hooks, so the shared blocks' tensor names stay those of the trunk.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from toolkit.errors import ToolkitError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LowRank(nn.Module):
    """``x[..., in]`` -> ``scale * b(a(x))[..., out]``; ``b`` starts at zero."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float, gen: torch.Generator) -> None:
        super().__init__()
        weight = linear.weight
        bound = 1 / math.sqrt(linear.in_features)
        a = (torch.rand(rank, linear.in_features, generator=gen) * 2 - 1) * bound
        self.a = nn.Parameter(a.to(weight.device, weight.dtype))
        self.b = nn.Parameter(torch.zeros(linear.out_features, rank, device=weight.device, dtype=weight.dtype))
        self.scale = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        return (x @ self.a.to(x.dtype).T) @ self.b.to(x.dtype).T * self.scale


class SpeechLoRA(nn.Module):
    """Adapters for ``targets`` of each block in ``blocks``, applied where :attr:`speech_mask`
    (``[B, L, 1]`` bool, set by the model around the shared blocks' pass; None = no speech
    position, nothing to add) is true."""

    def __init__(self, blocks: nn.ModuleList, rank: int, targets: tuple[str, ...], alpha: float,
                 gen: torch.Generator) -> None:
        super().__init__()
        unknown = set(targets) - set(TARGETS)
        if unknown or not targets:
            raise ToolkitError(f"speech_lora_targets must be among {', '.join(TARGETS)} "
                               f"(got {list(targets)})")
        if rank < 1:
            raise ToolkitError(f"speech_lora_rank must be at least 1 (got {rank})")
        self.speech_mask: Tensor | None = None
        self.adapters = nn.ModuleDict()
        for i, block in enumerate(blocks):
            for name, module in block.named_modules():
                short = name.rsplit(".", 1)[-1]
                if short in targets and isinstance(module, nn.Linear):
                    key = f"{i}_{short}"
                    self.adapters[key] = LowRank(module, rank, alpha, gen)
                    module.speech_lora_key = key
                    module.register_forward_hook(self._add_delta)
        if not len(self.adapters):
            raise ToolkitError(f"speech_lora_targets {list(targets)} matched no linear of the shared blocks")

    def _add_delta(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        # a bound method (not a closure), so a deep copy of the model hooks its own adapters
        mask = self.speech_mask
        if mask is None:
            return output
        delta = self.adapters[module.speech_lora_key](inputs[0])
        return torch.where(mask, output + delta.to(output.dtype), output)
