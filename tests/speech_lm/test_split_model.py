"""The split model against the unsplit trunk: exact text logits, branch skipping, fused
attention, KV-cached incremental forward, causality, and one-line errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError
from toolkit.speech_lm import losses_from_logits, speech_positions, split_lm_losses, text_positions
from toolkit.speech_lm.sequences import pretraining_example

from speech_lm_helpers import N_CODES, ByteChat, assert_cached_equals_full, mixed_batch, tiny_split, tiny_trunk


@pytest.mark.parametrize("branches", [("text",), ("text", "speech")])
def test_text_logits_equal_trunk_exactly(split_pair, branches):
    trunk, model = split_pair
    ids = torch.randint(0, 250, (2, 12))
    grid = torch.stack([ids, torch.full_like(ids, model.tokens.speech_pad)], -1)
    with torch.no_grad():
        ref = trunk(ids)
        out = model(grid, branches=branches)
    assert model.tokens.appended_text_rows == (256, 257)  # the tiny trunk reserves no tokens
    assert torch.equal(out.text_logits[..., :256], ref)


def test_reserved_tokens_are_claimed():
    trunk = tiny_trunk()
    trunk.config = dataclasses.replace(trunk.config, reserved_token_ids=(3, 7, 9))
    model = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=1, codebook_size=N_CODES)
    t = model.tokens
    assert (t.sosp, t.modality_pad, t.eosp, t.speech_pad) == (3, 7, N_CODES, N_CODES + 1)
    ids = torch.randint(10, 250, (1, 9))
    grid = torch.stack([ids, torch.full_like(ids, t.speech_pad)], -1)
    with torch.no_grad():
        assert torch.equal(model(grid).text_logits, trunk(ids))


def test_copy_init_speech_branch_matches_text_branch_blocks(split_pair):
    _, model = split_pair
    text, speech = model.branches["text"], model.branches["speech"]
    for a, b in zip(text.layers.state_dict().values(), speech.layers.state_dict().values()):
        assert torch.equal(a, b)
    assert text.layers[0].self_attn.q_proj.weight is not speech.layers[0].self_attn.q_proj.weight
    _, rnd = tiny_split(init="random")
    assert not torch.equal(rnd.branches["speech"].layers[0].mlp.up_proj.weight,
                           rnd.branches["text"].layers[0].mlp.up_proj.weight)


def test_skipping_a_branch_gives_the_same_logits(split_pair):
    _, model = split_pair
    grid = mixed_batch(model)
    with torch.no_grad():
        both = model(grid)
        alone = {b: getattr(model(grid, branches=(b,)), f"{b}_logits") for b in ("text", "speech")}
    torch.testing.assert_close(alone["text"], both.text_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(alone["speech"], both.speech_logits, rtol=0, atol=1e-6)


def test_loss_on_needed_positions_equals_loss_on_full_logits(split_pair):
    _, model = split_pair
    tok = ByteChat()
    codes = torch.randint(0, N_CODES, (7,))
    examples = [pretraining_example(k, tok, model.tokens, codes=codes, text="hello")
                for k in ("asr", "tts")]
    from toolkit.speech_lm.data import collate

    batch = collate(examples, model.tokens)
    with torch.no_grad():
        fast = split_lm_losses(model, batch)
        full = losses_from_logits(model(batch["input_ids"]), batch)
    for key in ("loss", "text_loss", "speech_loss", "text_acc", "speech_acc"):
        torch.testing.assert_close(fast[key], full[key], rtol=1e-6, atol=1e-6)
    assert int(fast["speech_tokens"]) == 2 * (len(codes) + 1)


def test_incremental_forward_with_lazy_branches_equals_full_forward(split_pair):
    _, model = split_pair
    grid = mixed_batch(model)
    with torch.no_grad():
        full = model(grid)
        caches = model.new_caches()
        steps = [model(grid[:, :4], ("text", "speech"), caches=caches)]
        for t in range(4, grid.shape[1]):  # alternate which branch runs; the other lags
            branch = ("text",) if t % 3 else ("speech",)
            steps.append(model(grid[:, t:t + 1], branch, caches=caches))
    assert caches.length == grid.shape[1]
    for t in range(4, grid.shape[1]):
        out = steps[t - 3]
        branch = "text" if t % 3 else "speech"
        torch.testing.assert_close(getattr(out, f"{branch}_logits")[:, 0],
                                   getattr(full, f"{branch}_logits")[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("branch", ["text", "speech"])
def test_causality(split_pair, branch):
    _, model = split_pair
    grid = mixed_batch(model)
    x = model.embed(grid).detach().requires_grad_(True)
    model.embed = lambda ids: x  # feed the embeddings directly so they get gradients
    out = getattr(model(grid), f"{branch}_logits")
    L = grid.shape[1]
    for t in (0, 3, L // 2, L - 2):
        (grad,) = torch.autograd.grad(out[:, t].sum(), x, retain_graph=True)
        assert torch.count_nonzero(grad[:, t + 1:]) == 0
        assert torch.count_nonzero(grad[:, : t + 1]) > 0


@pytest.mark.parametrize("split_at", [0, 4, -4, 9])
def test_split_point_outside_trunk(split_at):
    with pytest.raises(ToolkitError, match="outside the trunk"):
        toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=split_at)


def test_sequence_longer_than_context():
    _, model = tiny_split(max_position=16)
    ids = torch.zeros(1, 17, 2, dtype=torch.long)
    with pytest.raises(ToolkitError, match="longer than the trunk's context of 16"):
        model(ids)


def test_bad_input_shape(split_pair):
    with pytest.raises(ToolkitError, match=r"\[B, L, 2\]"):
        split_pair[1](torch.zeros(1, 5, dtype=torch.long))


def adapted_split(layers: int = 2):
    trunk = tiny_trunk()
    model = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=-2,
                          codebook_size=N_CODES, speech_adapter_layers=layers)
    return trunk, model


def test_speech_adapter_starts_as_identity_and_never_touches_text():
    _, plain = tiny_split()
    _, model = adapted_split()
    grid = mixed_batch(model)
    with torch.no_grad():
        torch.testing.assert_close(model(grid).speech_logits, plain(grid).speech_logits, rtol=0, atol=0)
        for p in model.speech_adapter.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.1)
        moved = model(grid)
        text_only = torch.stack([text_positions(torch.arange(10, 20), model.tokens)])
        assert torch.equal(model(text_only).text_logits, plain(text_only).text_logits)
    assert not torch.allclose(moved.speech_logits, plain(grid).speech_logits)
    assert {n for n, _ in model.parameter_groups()["speech"]} >= {
        n for n, _ in model.named_parameters() if n.startswith("speech_adapter.")}


def test_speech_adapter_cached_forward_equals_full_forward():
    _, model = adapted_split()
    with torch.no_grad():
        for p in model.speech_adapter.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(4)) * 0.1)
    assert_cached_equals_full(model, mixed_batch(model), prefix=5)
