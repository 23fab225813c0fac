"""FastLinear: both packed paths equal F.linear, never go stale, and stay out of training."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.nn import FastLinear, drop_fast_copies, use_fast_linears


def _layer(out_features: int = 96, bias: bool = True) -> FastLinear:
    torch.manual_seed(0)
    return FastLinear.from_linear(nn.Linear(64, out_features, bias=bias))


@pytest.mark.parametrize("rows", [(1, 1), (3, 5), (2, 40)])  # panels, panels, oneDNN
@pytest.mark.parametrize("out_features", [96, 98, 97])      # 4, 2 and 1 panels
def test_fast_paths_equal_linear(out_features, rows):
    layer = _layer(out_features)
    x = torch.randn(*rows, 64)
    with torch.no_grad():
        got = layer(x)
    layout = "panels" if x[..., 0].numel() <= FastLinear.panel_rows else "onednn"
    assert layout in layer._copies
    torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)


def test_copies_follow_weight_updates():
    layer = _layer()
    x, many = torch.randn(1, 64), torch.randn(40, 64)
    with torch.no_grad():
        before = layer(x), layer(many)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).sum().backward()  # autograd: ordinary path
    opt.step()
    with torch.no_grad():
        after = layer(x), layer(many)
        expected = F.linear(x, layer.weight, layer.bias), F.linear(many, layer.weight, layer.bias)
        layer.load_state_dict({"weight": torch.zeros(96, 64), "bias": torch.ones(96)})
        loaded = layer(x), layer(many)
    for b, a, e in zip(before, after, expected):
        assert not torch.allclose(b, a)
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded[0], torch.ones(1, 96))
    torch.testing.assert_close(loaded[1], torch.ones(40, 96))


def test_training_and_autocast_take_the_ordinary_path():
    layer = _layer()
    x = torch.randn(4, 64, requires_grad=True)
    layer(x).sum().backward()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    assert layer._copies is None and x.grad is not None


def test_use_fast_linears_keeps_parameters_and_deep_copies():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 4)))
    storage = {k: v.data_ptr() for k, v in model.state_dict().items()}
    assert use_fast_linears(model) == 2
    assert all(isinstance(m, FastLinear) for m in (model[0], model[2][0]))
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == storage
    with torch.no_grad():
        model(torch.randn(1, 8)), model(torch.randn(32, 8))
    twin = copy.deepcopy(model)  # a oneDNN copy cannot be deep-copied: it is left behind
    x = torch.randn(32, 8)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x))
    drop_fast_copies(model)
    assert model[0]._copies is None
