"""Speech-position adapters on the shared blocks (``speech_lora_rank``): they start as the
identity, never change a text-only input or text before the first speech position, let text
after speech hear it, keep cached decoding equal to a full pass, and save with the speech side."""

from __future__ import annotations

import copy

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError
from toolkit.persist.split_model import load_into, save_split_model
from toolkit.speech_lm import text_positions

from speech_lm_helpers import N_CODES, assert_cached_equals_full, mixed_batch, tiny_split, tiny_trunk


def lora_split(rank: int = 4, **extra):
    return toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=-2,
                         codebook_size=N_CODES, speech_lora_rank=rank, **extra)


def perturb(model, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.speech_lora.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)


def test_starts_as_identity_then_only_speech_positions_and_what_follows_change():
    _, plain = tiny_split()
    model = lora_split()
    grid = mixed_batch(model)
    text_only = torch.stack([text_positions(torch.arange(10, 22), model.tokens)])
    with torch.no_grad():
        before = plain(grid)
        torch.testing.assert_close(model(grid).speech_logits, before.speech_logits, rtol=0, atol=0)
        perturb(model)
        after = model(grid)
        assert torch.equal(model(text_only).text_logits, plain(text_only).text_logits)
    assert torch.equal(after.text_logits[0, :5], before.text_logits[0, :5])  # text before speech
    assert not torch.allclose(after.text_logits[1, 6:], before.text_logits[1, 6:])  # text hears speech
    assert not torch.allclose(after.speech_logits[0, 5:], before.speech_logits[0, 5:])


def test_text_loss_after_speech_trains_the_adapters_and_is_on_the_speech_side():
    model = lora_split()
    perturb(model)
    model.branches["text"].head(model.forward_hidden(mixed_batch(model))["text"])[1, -1].sum().backward()
    speech = {n for n, _ in model.parameter_groups()["speech"]}
    lora = {n for n, _ in model.named_parameters() if n.startswith("speech_lora.")}
    assert lora and lora <= speech
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if n in lora)
    assert {n for n in model.state_dict() if n.startswith("shared.")} == {
        n for n in tiny_split()[1].state_dict() if n.startswith("shared.")}  # the trunk's names stay


def test_cached_forward_equals_full_forward():
    model = lora_split()
    perturb(model)
    assert_cached_equals_full(model, mixed_batch(model), prefix=4)


def test_saved_speech_side_restores_the_adapters_and_a_copy_has_its_own(tmp_path):
    model = lora_split()
    perturb(model)
    save_split_model(model, tmp_path, stage="stage1", contents="speech_side", trunk_node={}, splitter_node={})
    fresh = lora_split()
    load_into(fresh, tmp_path)
    grid = mixed_batch(model)
    twin = copy.deepcopy(fresh)
    perturb(twin, seed=5)  # a deep copy's hooks must use the copy's adapters, not the original's
    with torch.no_grad():
        assert torch.equal(fresh(grid).speech_logits, model(grid).speech_logits)
        assert not torch.allclose(twin(grid).speech_logits, model(grid).speech_logits)


@pytest.mark.parametrize("extra, message", [
    ({"speech_lora_rank": -1}, "speech_lora_rank must be at least 1"),
    ({"speech_lora_targets": ["qkv"]}, "speech_lora_targets must be among q_proj"),
])
def test_bad_settings_are_one_line_errors(extra, message):
    rank = extra.pop("speech_lora_rank", 4)
    with pytest.raises(ToolkitError, match=message):
        lora_split(rank, **extra)
