"""Our logits processors against Hugging Face's, and sampling invariants."""

from __future__ import annotations

import pytest
import torch

from toolkit.sampling import SamplingParams, process_logits, sample


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0.7, top_k=10, top_p=0.8, repetition_penalty=1.3),
    SamplingParams(temperature=1.5, top_k=0, top_p=0.5, repetition_penalty=1.0),
    SamplingParams(temperature=1.0, top_k=3, top_p=1.0, repetition_penalty=0.8),
    SamplingParams(temperature=0.0, repetition_penalty=1.2),
])
def test_processors_match_transformers(params):
    transformers = pytest.importorskip("transformers")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=gen) * 3
    history = torch.randint(0, 50, (4, 12), generator=gen)
    procs = transformers.LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(transformers.RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        procs.append(transformers.TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            procs.append(transformers.TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            procs.append(transformers.TopPLogitsWarper(params.top_p))
    want = procs(history, logits.clone())
    got = process_logits(logits, history, params)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = ~torch.isinf(want)
    assert torch.allclose(got[finite], want[finite], atol=1e-6)


def test_negative_history_entries_are_ignored():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    params = SamplingParams(repetition_penalty=2.0)
    out = process_logits(logits, torch.tensor([[1, -1, -1]]), params)
    assert out.tolist() == [[2.0, -4.0, 1.0]]


def test_sampling_respects_filters_and_is_reproducible():
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=1.0, top_k=5)
    allowed = torch.topk(logits, 5).indices
    draws = [sample(logits, None, params, torch.Generator().manual_seed(s)) for s in range(30)]
    for d in draws:
        assert all(int(d[r]) in allowed[r].tolist() for r in range(3))
    again = [sample(logits, None, params, torch.Generator().manual_seed(s)) for s in range(30)]
    assert all(torch.equal(a, b) for a, b in zip(draws, again))
    assert len({tuple(d.tolist()) for d in draws}) > 1


def test_greedy_is_argmax():
    logits = torch.randn(5, 30)
    assert torch.equal(sample(logits, None, SamplingParams()), logits.argmax(-1))
