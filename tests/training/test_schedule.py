"""warmup_cosine: the one learning-rate schedule of the LM stages, component stages and pretraining."""

import math

import pytest
import torch

from toolkit.training.schedule import warmup_cosine


@pytest.mark.parametrize("float32_cosine", [False, True])
def test_linear_warmup_then_cosine_down_to_the_floor(float32_cosine: bool) -> None:
    warmup, max_steps, floor = 10, 110, 0.1
    f = warmup_cosine(warmup, max_steps, floor, float32_cosine)
    assert [f(s) for s in range(warmup)] == [(s + 1) / warmup for s in range(warmup)]
    assert f(warmup) == 1.0  # the peak, where the decay starts
    assert f(warmup + 50) == pytest.approx(floor + (1 - floor) * 0.5, abs=1e-6)  # half way
    decay = [f(s) for s in range(warmup, max_steps + 1)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # monotone
    assert f(max_steps) == pytest.approx(floor, abs=1e-7)
    assert [f(s) for s in range(max_steps, max_steps + 5)] == [f(max_steps)] * 5  # flat after


def test_no_warmup_starts_at_the_peak() -> None:
    f = warmup_cosine(0, 100, 0.0)
    assert f(0) == 1.0
    assert f(100) == pytest.approx(0.0, abs=1e-12)
    assert f(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_float32_cosine_is_the_float32_value() -> None:
    f32, f64 = warmup_cosine(3, 40, 0.1, float32_cosine=True), warmup_cosine(3, 40, 0.1)
    progress = (17 - 3) / 37
    cos32 = torch.cos(torch.tensor(progress * math.pi)).item()
    assert f32(17) == 0.1 + 0.9 * 0.5 * (1 + cos32)
    assert f32(17) == pytest.approx(f64(17), abs=1e-6)


def test_drives_lambda_lr_and_stays_out_of_the_checkpoint() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(2, 6, 0.5))
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == [1.0, 2.0, 2.0] and lrs[-1] == pytest.approx(1.0)
    assert sched.state_dict()["lr_lambdas"] == [None]  # a function: nothing to restore


def test_fused_adamw_takes_the_reference_adamw_steps():
    """Every trainer's optimizer (the fused kernel) updates weights as PyTorch's reference
    per-tensor AdamW does, with parameter groups of their own learning rate and weight decay."""
    import torch

    from toolkit.training.schedule import adamw

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(7, 5, generator=gen), torch.randn(5, generator=gen), torch.randn(3, 3, generator=gen)]
    grads = [[torch.randn(t.shape, generator=gen) for t in start] for _ in range(5)]
    runs = []
    for make in (adamw, lambda groups, **kw: torch.optim.AdamW(groups, foreach=False, **kw)):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        opt = make([{"params": params[:2], "lr": 1e-2}, {"params": params[2:], "lr": 3e-3, "weight_decay": 0.0}],
                   betas=(0.9, 0.95), weight_decay=0.1)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        runs.append(params)
    for fused, reference, first in zip(*runs, start):
        assert not torch.equal(fused, first)
        torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)


def test_a_cached_fast_weight_sees_the_step_adamw_took():
    """The fused kernel leaves version counters alone; FastLinear's packed copy must not go stale."""
    import torch

    from toolkit.nn.fast_linear import FastLinear
    from toolkit.training.schedule import adamw

    layer = FastLinear.from_linear(torch.nn.Linear(8, 8))
    x = torch.randn(3, 8)
    with torch.no_grad():
        layer(x)  # builds the packed copy
    opt = adamw(layer.parameters(), lr=0.1)
    layer(x).square().sum().backward()
    opt.step()
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
