"""PanelLinear: the fast few-row CPU path equals F.linear, never goes stale, stays out of training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from toolkit.nn import PanelLinear, drop_panels, use_panels


def _layer(out_features: int = 96, bias: bool = True) -> PanelLinear:
    torch.manual_seed(0)
    return PanelLinear.from_linear(nn.Linear(64, out_features, bias=bias))


def test_panel_path_equals_linear_for_every_panel_count():
    for out_features in (96, 98, 97):  # 4, 2 and 1 panels
        layer = _layer(out_features)
        for rows in ((1, 1), (3, 5), (2, 40)):
            x = torch.randn(*rows, 64)
            with torch.no_grad():
                got = layer(x)
            assert layer._panels is not None
            torch.testing.assert_close(got, F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)


def test_panels_follow_weight_updates():
    layer = _layer()
    x = torch.randn(1, 64)
    with torch.no_grad():
        before = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).sum().backward()  # autograd: ordinary path
    opt.step()
    with torch.no_grad():
        after = layer(x)
        expected = F.linear(x, layer.weight, layer.bias)
        layer.load_state_dict({"weight": torch.zeros(96, 64), "bias": torch.ones(96)})
        loaded = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loaded, torch.ones(1, 96))


def test_training_autocast_and_many_rows_take_the_ordinary_path():
    layer = _layer()
    x = torch.randn(4, 64, requires_grad=True)
    layer(x).sum().backward()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16
    with torch.no_grad():
        layer(torch.randn(PanelLinear.max_rows + 1, 64))
    assert layer._panels is None and x.grad is not None


def test_use_panels_keeps_parameters_and_state_dict():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 4)))
    names = dict(model.state_dict())
    assert use_panels(model) == 2
    assert all(isinstance(m, PanelLinear) for m in (model[0], model[2][0]))
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == \
        {k: v.data_ptr() for k, v in names.items()}
    with torch.no_grad():
        model(torch.randn(1, 8))
    drop_panels(model)
    assert model[0]._panels is None
