"""Weight-only 4-bit execution of linear layers whose weights are 4-bit block-quantised.

GGUF ``Q4_0`` / ``Q4_1`` weights are ``w = scale * (q - 8) + zero`` per block of 32 inputs
(``q`` in 0..15). :class:`Int4Linear` keeps the ordinary ``weight`` (what training, saving and
every other code path use) and, next to it, those 4-bit codes packed for PyTorch's CPU int4
kernel, which reads 8x fewer bytes than an fp32 matrix. CPU decoding is bound by memory
bandwidth, so this is where speed comes from, as in llama.cpp.

It is approximate: PyTorch's kernel is only fast with bf16 activations and bf16 scales (its
fp32 path is a slow reference loop), so inputs, block scales and outputs are rounded to bf16
(about 3 significant digits). Use it for fast inference, not for exact parity. The packed path
only runs when valid: no autograd, CPU tensors, and the weight untouched since packing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.nn.fast_linear import weight_stamp

GROUP = 32


def _int4_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


class Int4Linear(nn.Linear):
    """An ``nn.Linear`` (same ``weight``/``bias``, same state dict) with a packed 4-bit copy.

    Build with :meth:`from_linear`; ``forward(x[..., in]) -> [..., out]``.
    """

    packed: Tensor
    scale_zero: Tensor

    @classmethod
    def from_linear(cls, linear: nn.Linear, codes: Tensor, scale: Tensor, zero: Tensor) -> "nn.Linear":
        """Wrap ``linear`` (sharing its parameters) given ``codes[out,in]`` in 0..15 and
        ``scale, zero[out, in/32]`` with ``weight == scale * (codes - 8) + zero`` blockwise.
        Returns ``linear`` itself when this PyTorch has no int4 CPU kernel."""
        if not _int4_available() or linear.in_features % GROUP:
            return linear
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight, new.bias = linear.weight, linear.bias
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), 1)
        sz = torch.stack([scale.float().t(), zero.float().t()], dim=-1).to(torch.bfloat16)
        new.register_buffer("packed", packed, persistent=False)
        new.register_buffer("scale_zero", sz, persistent=False)
        new._stamp = weight_stamp(new.weight)
        return new

    def packed_usable(self, x: Tensor) -> bool:
        return (not torch.is_grad_enabled() and x.device.type == "cpu"
                and self.packed.device.type == "cpu" and weight_stamp(self.weight) == self._stamp)

    def forward(self, x: Tensor) -> Tensor:
        if not self.packed_usable(x):
            return super().forward(x)
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            flat, self.packed, GROUP, self.scale_zero.to(torch.bfloat16)).to(x.dtype)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


__all__ = ["Int4Linear", "GROUP"]
