"""The fused Triton attention kernel against an fp64 PyTorch reference: outputs and gradients,
causal with a KV offset, left padding, GQA, the two-branch fold, head dims 16..128.

Not collected directly: ``test_triton_attention.py`` runs this file in a process started with
``TRITON_INTERPRET=1`` when there is no GPU (then mostly in fp32; the bf16/fp16 cases check
the casts, since the kernel computes every dot in fp32 under the interpreter)."""

from __future__ import annotations

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.kernels import attention, get_backend, set_backend

# (batch, heads, kv_heads, q_len, k_len, head_dim, left_pad): sizes not multiples of the block
CASES = {
    "mha_causal_d64": (1, 2, 2, 48, 48, 64, None),
    "gqa4_ragged_d16": (1, 4, 1, 33, 33, 16, None),
    "kv_offset_d32": (1, 4, 2, 17, 64, 32, None),
    "left_padding_d64": (2, 2, 1, 40, 40, 64, (0, 23)),
    "padding_offset_d128": (2, 2, 2, 8, 50, 128, (5, 44)),
    "d128_causal": (1, 2, 1, 32, 32, 128, None),
    "decode_step_d32": (2, 4, 2, 1, 37, 32, (0, 9)),
}


def make_inputs(batch, heads, kv_heads, q_len, k_len, head_dim, left_pad, device,
                dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, head_dim, generator=gen)
    k = torch.randn(batch, kv_heads, k_len, head_dim, generator=gen)
    v = torch.randn(batch, kv_heads, k_len, head_dim, generator=gen)
    padding = None
    if left_pad is not None:
        padding = torch.arange(k_len)[None, :] >= torch.tensor(left_pad)[:, None]
        padding = padding.to(device)
    q, k, v = (t.to(device=device, dtype=dtype).requires_grad_() for t in (q, k, v))
    return q, k, v, padding


def check_against_reference(flash, reference, q, k, v, padding, atol, **kwargs):
    out = flash.flash_attention(q, k, v, padding, **kwargs)
    expected, sees_key = reference(q, k, v, padding)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, atol=atol, rtol=0)
    # Rows that see no key are padding: the upstream gradient there is zero.
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grad_out = grad_out.to(q.device) * sees_key[..., None]
    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(out.dtype))
    expected_grads = torch.autograd.grad(expected, (q, k, v), grad_out.double())
    for name, got, want in zip("qkv", grads, expected_grads):
        assert got.dtype == q.dtype, name
        torch.testing.assert_close(got.double(), want.double(), atol=atol * 4, rtol=0,
                                   msg=lambda m, n=name: f"d{n}: {m}")
    return out, sees_key


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_reference(flash, reference, device, case):
    q, k, v, padding = make_inputs(*case, device=device)
    out, sees_key = check_against_reference(flash, reference, q, k, v, padding, atol=2e-5)
    assert (out[~sees_key] == 0).all()  # documented: rows that see no key are zero


@pytest.mark.parametrize("blocks", [(16, 32), (32, 16), (64, 16)])
def test_block_shapes_agree(flash, reference, device, blocks):
    q, k, v, padding = make_inputs(2, 2, 1, 29, 45, 32, (3, 20), device=device)
    check_against_reference(flash, reference, q, k, v, padding, atol=2e-5, block_sizes=blocks)


def test_two_branches_folded_into_heads_stay_separate(flash, reference, device):
    """The split model's fused launch: [text heads | speech heads] against their own KV."""
    heads, kv_heads = 4, 2
    q, k, v, padding = make_inputs(1, 2 * heads, 2 * kv_heads, 24, 40, 32, (6,), device=device)
    out = flash.flash_attention(q, k, v, padding)
    for branch in range(2):
        hq = slice(branch * heads, (branch + 1) * heads)
        hkv = slice(branch * kv_heads, (branch + 1) * kv_heads)
        expected, _ = reference(q[:, hq], k[:, hkv], v[:, hkv], padding)
        torch.testing.assert_close(out[:, hq].double(), expected, atol=2e-5, rtol=0)


def test_gradients_never_reach_future_keys(flash, device):
    q, k, v, _ = make_inputs(1, 2, 1, 32, 32, 16, None, device=device)
    out = flash.flash_attention(q, k, v)
    row = 11
    loss = out[:, :, row].sum()
    dq, dk, dv = torch.autograd.grad(loss, (q, k, v))
    assert (dk[:, :, row + 1:] == 0).all() and (dv[:, :, row + 1:] == 0).all()
    assert dk[:, :, :row + 1].abs().sum() > 0 and (dq[:, :, row + 1:] == 0).all()


def test_strided_inputs_from_sequence_major_layout(flash, reference, device):
    """q/k/v as the model makes them: [B, L, H, d] transposed to [B, H, L, d]."""
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, 20, 4, 32, generator=gen).to(device).transpose(1, 2).requires_grad_()
    k = torch.randn(2, 20, 2, 32, generator=gen).to(device).transpose(1, 2).requires_grad_()
    v = torch.randn(2, 20, 2, 32, generator=gen).to(device).transpose(1, 2).requires_grad_()
    check_against_reference(flash, reference, q, k, v, None, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_precision(flash, reference, device, dtype):
    q, k, v, padding = make_inputs(1, 4, 2, 24, 32, 64, (4,), device=device, dtype=dtype)
    check_against_reference(flash, reference, q, k, v, padding, atol=4e-2)


def test_explicit_scale(flash, reference, device):
    q, k, v, _ = make_inputs(1, 2, 2, 16, 16, 16, None, device=device)
    out = flash.flash_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out.double(), reference(q, k, v, None, scale=0.3)[0], atol=2e-5, rtol=0)


@pytest.mark.parametrize("shapes, match", [
    (((1, 3, 8, 16), (1, 2, 8, 16)), "multiple"),
    (((1, 2, 8, 48), (1, 2, 8, 48)), "head_dim 48"),
    (((1, 2, 9, 16), (1, 2, 8, 16)), "9 queries but only 8 keys"),
])
def test_bad_shapes_are_toolkit_errors(flash, device, shapes, match):
    q = torch.zeros(shapes[0], device=device)
    k = torch.zeros(shapes[1], device=device)
    with pytest.raises(ToolkitError, match=match):
        flash.flash_attention(q, k, k)


def test_padding_mask_must_be_bool(flash, device):
    q = torch.zeros(1, 2, 8, 16, device=device)
    with pytest.raises(ToolkitError, match="key_padding must be bool"):
        flash.flash_attention(q, q, q, torch.ones(1, 8, device=device))


def test_dispatch_runs_the_kernel_when_forced(flash, reference, device):
    """Forced ``triton`` (argument or process default) gives the kernel's zero rows where no key
    is visible; ``sdpa`` lets such rows attend everywhere (finite, non-zero)."""
    q, k, v, padding = make_inputs(2, 4, 2, 12, 12, 16, (0, 5), device=device)
    expected, sees_key = reference(q, k, v, padding)
    forced = attention(q, k, v, padding, backend="triton")
    torch.testing.assert_close(forced.double(), expected, atol=2e-5, rtol=0)
    assert (forced[~sees_key] == 0).all()
    previous = get_backend()
    set_backend("triton")
    try:
        by_default = attention(q, k, v, padding)
    finally:
        set_backend(previous)
    assert torch.equal(by_default, forced)
    via_sdpa = attention(q, k, v, padding, backend="sdpa")
    torch.testing.assert_close(via_sdpa[sees_key].double(), expected[sees_key], atol=2e-5, rtol=0)
    assert (via_sdpa[~sees_key].abs().sum(-1) > 0).all()
