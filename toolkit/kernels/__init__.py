"""Attention kernels and their dispatch.

:func:`attention` is the one entry point the model code calls. ``backend``:
``"auto"`` (the fused Triton kernel on CUDA, ``scaled_dot_product_attention`` elsewhere),
``"triton"`` or ``"sdpa"`` to force one. Recipes set the default with ``kernels.attention``.
"""

from __future__ import annotations

from toolkit.kernels.dispatch import attention, get_backend, set_backend

__all__ = ["attention", "get_backend", "set_backend"]
