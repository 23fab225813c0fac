"""Branches of the split model and how they run: alone, or side by side with one fused
attention call per layer (the branch axis folded into the head axis); and how branch blocks start."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from toolkit import kernels
from toolkit.nn import AttentionContext


class Branch(nn.Module):
    """One modality's top: ``layers`` (DecoderBlocks), final ``norm`` and ``head``."""

    def __init__(self, layers: nn.ModuleList, norm: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.layers = layers
        self.norm = norm
        self.head = head


def run_branches(branches: list[Branch], xs: list[Tensor], ctx: AttentionContext,
                 caches: list | None) -> list[Tensor]:
    """Run branches of equal depth on their inputs ``xs[i][B,L,D]`` -> un-normed outputs.

    With two or more branches, each layer's attention is ONE ``toolkit.kernels.attention``
    call: queries ``[B, nH, L, d]`` and keys/values ``[B, nHkv, S, d]`` (branch ``i`` owns
    heads ``i*H .. (i+1)*H-1``, and GQA grouping keeps it on its own KV heads).
    ``caches[i]`` is branch ``i``'s :class:`toolkit.nn.KVCache` or None.
    """
    if len(branches) == 1:
        x, branch = xs[0], branches[0]
        cache = caches[0] if caches else None
        for i, block in enumerate(branch.layers):
            x = block(x, ctx, kv=cache[i] if cache is not None else None)
        return [x]
    xs = list(xs)
    for i in range(len(branches[0].layers)):
        blocks = [b.layers[i] for b in branches]
        qkv = [block.attn_inputs(x, ctx) for block, x in zip(blocks, xs)]
        if caches:
            qkv = [(q, *cache[i].update(k, v)) for (q, k, v), cache in zip(qkv, caches)]
        q, k, v = (torch.cat(parts, dim=1) for parts in zip(*qkv))
        heads = qkv[0][0].shape[1]
        a = kernels.attention(q, k, v, key_padding=ctx.key_padding)
        xs = [block.attn_outputs(x, part) for block, x, part in zip(blocks, xs, a.split(heads, dim=1))]
    return xs


def identity_copy(block: nn.Module) -> nn.Module:
    """A copy of a residual ``block`` whose attention and MLP output projections are zero, so
    it passes its input through unchanged until it is trained."""
    out = copy.deepcopy(block)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name.startswith(("self_attn.o_proj.", "mlp.down_proj.")):
                p.zero_()
    return out


def reinit_block(block: nn.Module, gen: torch.Generator) -> None:
    """Fresh weights of the same scale: linear weights normal with the copied weight's std,
    biases zero, norm weights one."""
    with torch.no_grad():
        for name, p in block.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * float(p.float().std()))
            elif name.endswith("norm.weight") or "layernorm" in name:
                p.fill_(1.0)
            else:
                p.zero_()


__all__ = ["Branch", "identity_copy", "reinit_block", "run_branches"]
