"""Fast exact CPU inference for linear layers: packed copies of the weight, chosen by row count.

PyTorch's CPU ``F.linear`` (weight ``[out, in]``) is slow for inference-sized inputs here:

- **Few rows** (decoding one token): the product is bound by how fast the weight streams from
  memory, and ``F.linear`` streams it at about 16 GB/s on one core. The same product as a
  batched matmul over ``P`` column panels of the transposed weight,
  ``x[P,R,in] @ panels[P,in,out/P]``, runs the panels on all cores at about 34 GB/s.
- **More rows** (a prompt): oneDNN's fp32 matmul on its own packed weight layout is about 1.9x
  faster than ``F.linear`` at 41 rows (and than the panels beyond 16 rows).

Both are the same fp32 product up to summation order (the tests bound the difference);
``benchmarks/generate.py`` measures the effect. :class:`FastLinear` keeps the ordinary
``weight`` (what training, saving and every other path use) and builds each copy lazily on its
first eligible call: no autograd, no autocast, fp32 on CPU (bf16 measured slower). A copy is
rebuilt whenever the weight changes (an optimizer step, ``load_state_dict``), so it is never
stale. Each copy costs one more copy of the weights while it exists; :func:`drop_fast_copies`
frees them.
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


class FastLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state dict) that runs CPU inference fast.

    ``forward(x[..., in]) -> [..., out]``; see the module docstring for which path runs when.
    """

    panel_rows = 16
    """Inputs of at most this many rows use the column panels; more rows use oneDNN."""

    _copies: dict[str, tuple[tuple, Tensor]] | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "FastLinear":
        """A :class:`FastLinear` sharing ``linear``'s weight and bias."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_copies", None)  # copies (a oneDNN one cannot be deep-copied) are rebuilt
        return state

    def fast_path(self, x: Tensor) -> bool:
        """True when ``x`` may take a packed copy: no autograd, no autocast, fp32 on CPU."""
        return (not torch.is_grad_enabled() and x.device.type == "cpu"
                and self.weight.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu"))

    def packed(self, layout: str) -> Tensor:
        """The weight as ``panels`` ``[P, in, out/P]`` or as a ``onednn`` tensor, rebuilt when
        the weight has changed."""
        stamp = weight_stamp(self.weight)
        if self._copies is None:
            self._copies = {}
        cached = self._copies.get(layout)
        if cached is None or cached[0] != stamp:
            w = self.weight.detach()
            copy = (rearrange(w, "(p o) i -> p i o", p=panel_count(self.out_features)).contiguous()
                    if layout == "panels" else w.contiguous().to_mkldnn())
            self._copies[layout] = cached = (stamp, copy)
        return cached[1]

    def forward(self, x: Tensor) -> Tensor:
        if not self.fast_path(x):
            return F.linear(x, self.weight, self.bias)
        rows = x.reshape(-1, self.in_features)
        if len(rows) <= self.panel_rows or not torch.backends.mkldnn.is_available():
            panels = self.packed("panels")
            y = rearrange(torch.bmm(rows.expand(panels.shape[0], -1, -1), panels), "p r o -> r (p o)")
        else:
            y = torch._C._nn.mkldnn_linear(rows.contiguous().to_mkldnn(), self.packed("onednn"),
                                           None).to_dense()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def use_fast_linears(module: nn.Module) -> int:
    """Turn every plain ``nn.Linear`` inside ``module`` into a :class:`FastLinear` (sharing
    its parameters, so nothing else changes); returns how many were converted."""
    converted = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, FastLinear.from_linear(child))
                converted += 1
    return converted


def drop_fast_copies(module: nn.Module) -> None:
    """Free the packed copies inside ``module`` (they are rebuilt on the next eligible call)."""
    for child in module.modules():
        if isinstance(child, FastLinear):
            child._copies = None


__all__ = ["FastLinear", "use_fast_linears", "drop_fast_copies", "weight_stamp", "panel_count"]
