"""The SDPA path of ``toolkit.kernels.attention`` against the fp64 reference, and the choice of
backend (the Triton side of the dispatch is checked in ``interpreter_cases.py``)."""

from __future__ import annotations

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.kernels import attention, get_backend, set_backend
from toolkit.kernels.dispatch import sdpa_attention


def make_inputs(batch, heads, kv_heads, q_len, k_len, head_dim, left_pad=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen, requires_grad=True)
    k = torch.randn(batch, kv_heads, k_len, head_dim, generator=gen, requires_grad=True)
    v = torch.randn(batch, kv_heads, k_len, head_dim, generator=gen, requires_grad=True)
    padding = None
    if left_pad is not None:
        padding = torch.arange(k_len)[None, :] >= torch.tensor(left_pad)[:, None]
    return q, k, v, padding


@pytest.mark.parametrize("shape", [
    (2, 4, 2, 16, 16, 64, None), (2, 6, 2, 5, 21, 128, (0, 7)), (1, 2, 1, 9, 9, 32, (4,)),
], ids=["causal_gqa", "offset_padded_d128", "left_padded"])
def test_sdpa_path_matches_reference(reference, shape):
    q, k, v, padding = make_inputs(*shape)
    out = attention(q, k, v, padding, backend="sdpa")
    expected, sees_key = reference(q, k, v, padding)
    torch.testing.assert_close(out[sees_key].double(), expected[sees_key], atol=1e-5, rtol=0)
    assert torch.isfinite(out).all()
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)) * sees_key[..., None]
    got = torch.autograd.grad(out, (q, k, v), grad_out)
    want = torch.autograd.grad(expected, (q, k, v), grad_out.double())
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-5, rtol=0)


def test_training_attention_under_bf16_autocast_on_cpu_runs_in_fp32(reference):
    """PyTorch's CPU flash backward is several times slower in bf16 than in fp32 on short
    sequences, so attention that will be differentiated under CPU autocast runs in fp32: output
    and gradients match the fp64 reference to fp32 accuracy (a bf16 kernel is off by ~1e-2)."""
    q, k, v, _ = make_inputs(2, 4, 2, 24, 24, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(q, k, v, backend="sdpa")
    expected, _ = reference(q, k, v)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad(out, (q, k, v), grad_out)
    want = torch.autograd.grad(expected, (q, k, v), grad_out.double())
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b.double(), atol=1e-4, rtol=0)


def test_auto_on_cpu_is_sdpa():
    """Rows that see no key tell the backends apart: on the SDPA path they attend to every key
    (the Triton kernel returns zeros there)."""
    q, k, v, padding = make_inputs(1, 2, 1, 6, 6, 16, (3,))
    with torch.no_grad():
        auto = attention(q, k, v, padding)
        assert get_backend() == "auto"
        assert torch.equal(auto, sdpa_attention(q, k, v, padding))
        empty_row = auto[0, :, 0]  # position 0 is padding: it sees no real key
        weights = torch.softmax(q[0, :, 0:1] @ k[0].transpose(1, 2) / 4.0, dim=-1)  # [2, 1, 6]
        torch.testing.assert_close(empty_row, (weights @ v[0]).squeeze(1))
        assert empty_row.abs().sum() > 0


def test_backend_names_are_checked():
    q = torch.zeros(1, 2, 4, 16)
    with pytest.raises(ToolkitError, match="unknown attention backend 'flash'"):
        attention(q, q, q, backend="flash")
    with pytest.raises(ToolkitError, match="unknown attention backend"):
        set_backend("cuda")
