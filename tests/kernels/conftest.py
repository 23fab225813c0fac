"""Shared pieces of the attention tests: the kernel module and a plain PyTorch reference.

Without a GPU the Triton kernels run only under Triton's interpreter, which must be switched
on (``TRITON_INTERPRET=1``) before triton and the kernels are first imported: so
``interpreter_cases.py`` runs in its own process, started by ``test_triton_attention.py``.
"""

from __future__ import annotations

import importlib

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        key_padding: torch.Tensor | None = None,
                        scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit fp64 softmax attention (causal, last-L queries, GQA, key padding).

    Returns ``out[B, H, L, d]`` (zero on rows that see no key) and ``sees_a_key[B, H, L]``."""
    B, H, L, d = q.shape
    S = k.shape[2]
    groups = H // k.shape[1]
    k = k.double().repeat_interleave(groups, dim=1)
    v = v.double().repeat_interleave(groups, dim=1)
    scores = torch.einsum("bhld,bhsd->bhls", q.double(), k) * (scale or d ** -0.5)
    visible = torch.arange(S - L, S)[:, None] >= torch.arange(S)[None, :]
    visible = visible.to(q.device)[None, None].expand(B, H, L, S)
    if key_padding is not None:
        visible = visible & key_padding[:, None, None, :]
    probs = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
    return torch.einsum("bhls,bhsd->bhld", probs, v), visible.any(-1)


@pytest.fixture(scope="session")
def flash():
    """The ``toolkit.kernels.triton_attention`` module, when its kernels can run here."""
    module = importlib.import_module("toolkit.kernels.triton_attention")
    if DEVICE == "cpu" and not module.INTERPRETED:
        pytest.skip("the Triton kernels need CUDA or TRITON_INTERPRET=1 set at process start")
    return module


@pytest.fixture
def reference():
    return reference_attention


@pytest.fixture
def device():
    return DEVICE
