"""The 4-bit inference path: approximate when active, exact fallback whenever it must not run."""

from __future__ import annotations

import torch
from torch import nn

from toolkit.nn import Int4Linear


def quantised_linear(out_f: int = 96, in_f: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 16, (out_f, in_f), generator=gen)
    scale = (torch.rand(out_f, in_f // 32, generator=gen) * 0.05).half().float()
    zero = (torch.randn(out_f, in_f // 32, generator=gen) * 0.05).half().float()
    weight = (codes - 8).float() * scale.repeat_interleave(32, 1) + zero.repeat_interleave(32, 1)
    linear = nn.Linear(in_f, out_f)
    with torch.no_grad():
        linear.weight.copy_(weight)
    return linear, Int4Linear.from_linear(linear, codes, scale, zero)


def test_packed_path_approximates_the_dense_weight():
    linear, packed = quantised_linear()
    assert isinstance(packed, Int4Linear) and packed.weight is linear.weight
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        want, got = linear(x), packed(x)
        assert packed.packed_usable(x)
    assert got.shape == want.shape
    assert not torch.equal(got, want)  # it really took the 4-bit path
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_exact_fallback_with_autograd_and_after_weight_update():
    linear, packed = quantised_linear()
    x = torch.randn(3, 64)
    assert torch.equal(packed(x), linear(x))  # grad enabled: dense path (trainable)
    with torch.no_grad():
        linear.weight.mul_(0.5)  # stale packed codes must never be used
        assert not packed.packed_usable(x)
        assert torch.equal(packed(x), linear(x))


def test_state_dict_is_that_of_a_plain_linear():
    linear, packed = quantised_linear()
    assert packed.state_dict().keys() == linear.state_dict().keys()

