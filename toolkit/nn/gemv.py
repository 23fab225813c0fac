"""Fast CPU decoding for linear layers: a column-panel copy of the weight for few-row inputs.

Decoding one token multiplies a single row by every weight matrix, so it is bound by how fast
the weights stream from memory. PyTorch's CPU ``F.linear`` (weight ``[out, in]``) streams them
at about 16 GB/s on this kind of machine, on one core. The same product written as a batched
matmul over ``P`` column panels of the transposed weight, ``x[P,R,in] @ panels[P,in,out/P]``,
runs the panels on all cores at about 34 GB/s (``benchmarks/generate.py`` measures the effect).
The result is the same fp32 product up to summation order (the tests bound the difference).

:class:`PanelLinear` keeps the ordinary ``weight`` (what training, saving and every other path
use) and builds the panel copy lazily, on the first eligible call: no autograd, no autocast,
fp32 on CPU, at most :attr:`PanelLinear.max_rows` rows. The copy is rebuilt whenever the weight changes
(an optimizer step, ``load_state_dict``), so it can never be stale. It costs one extra copy of
the weights while it exists; :func:`drop_panels` frees it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def weight_stamp(weight: Tensor) -> tuple:
    """Identity of a weight's current contents: storage, version counter, dtype, device."""
    return (weight.data_ptr(), weight._version, weight.dtype, weight.device)


def panel_count(out_features: int) -> int:
    """Panels to split ``out_features`` into (4, 2 or 1: equal widths only)."""
    return next(p for p in (4, 2, 1) if out_features % p == 0)


class PanelLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) that runs few-row inference fast.

    ``forward(x[..., in]) -> [..., out]``; see the module docstring for when the panel path runs.
    """

    max_rows = 256
    """Inputs with more rows than this take the ordinary ``F.linear`` (no gain measured)."""

    _panels: Tensor | None = None
    _stamp: tuple | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "PanelLinear":
        """A :class:`PanelLinear` sharing ``linear``'s weight and bias."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def panel_path(self, x: Tensor) -> bool:
        """True when ``x`` may take the panel path: no autograd, no autocast, fp32 on CPU (bf16
        panels measured slower than ``F.linear``), at most :attr:`max_rows` rows."""
        return (not torch.is_grad_enabled() and x.device.type == "cpu"
                and self.weight.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu") and x.numel() <= self.max_rows * self.in_features)

    def panels(self) -> Tensor:
        """The weight as ``[P, in, out/P]`` panels, rebuilt when the weight has changed."""
        stamp = weight_stamp(self.weight)
        if self._panels is None or self._stamp != stamp:
            p = panel_count(self.out_features)
            self._panels = rearrange(self.weight.detach(), "(p o) i -> p i o", p=p).contiguous()
            self._stamp = stamp
        return self._panels

    def forward(self, x: Tensor) -> Tensor:
        if not self.panel_path(x):
            return F.linear(x, self.weight, self.bias)
        panels = self.panels()
        rows = x.reshape(1, -1, self.in_features).expand(panels.shape[0], -1, -1)
        y = rearrange(torch.bmm(rows, panels), "p r o -> r (p o)")
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def use_panels(module: nn.Module) -> int:
    """Turn every plain ``nn.Linear`` inside ``module`` into a :class:`PanelLinear` (sharing
    its parameters, so nothing else changes); returns how many were converted."""
    converted = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, PanelLinear.from_linear(child))
                converted += 1
    return converted


def drop_panels(module: nn.Module) -> None:
    """Free the panel copies inside ``module`` (they are rebuilt on the next eligible call)."""
    for child in module.modules():
        if isinstance(child, PanelLinear):
            child._panels = child._stamp = None


__all__ = ["PanelLinear", "use_panels", "drop_panels", "weight_stamp", "panel_count"]
