"""The speech code map (``speech_code_map``): rows tied to the tokenizer's code vectors while a
stage trains. It starts as the plain table, a step on some codes moves the codes whose vectors
are alike, text positions never change, it is on the speech side, and folding it into the
table keeps every embedding. The speech head tied the same way (``speech_head_code_map``)
starts as the plain head, moves sound-alike codes together and folds back into a plain head."""

from __future__ import annotations

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError
from toolkit.speech_lm import text_positions

from speech_lm_helpers import N_CODES, mixed_batch, tiny_split, tiny_trunk


def mapped_split(vectors: torch.Tensor):
    model = toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=-2,
                          codebook_size=N_CODES, speech_code_map=True)
    model.init_code_vectors(vectors)
    return model


def twin_vectors() -> torch.Tensor:
    """Code vectors where codes 0 and 1 are near twins and code 2 points the other way."""
    v = torch.randn(N_CODES, 12, generator=torch.Generator().manual_seed(0))
    v[1] = v[0] + 0.01 * v[1]
    v[2] = -v[0]
    return v


def test_starts_as_the_table_and_leaves_text_alone():
    _, plain = tiny_split()
    model = mapped_split(twin_vectors())
    grid = mixed_batch(model)
    text_only = torch.stack([text_positions(torch.arange(10, 22), model.tokens)])
    with torch.no_grad():
        torch.testing.assert_close(model(grid).speech_logits, plain(grid).speech_logits, rtol=0, atol=0)
        model.speech_code_map.proj.weight.normal_()
        assert torch.equal(model(text_only).text_logits, plain(text_only).text_logits)


def test_a_step_on_one_code_moves_its_twin_and_the_map_is_on_the_speech_side():
    model = mapped_split(twin_vectors())
    speech = {n for n, _ in model.parameter_groups()["speech"]}
    assert "speech_code_map.proj.weight" in speech
    target = torch.randn(model.speech_embed.weight.shape[1])
    codes = torch.tensor([[[model.tokens.modality_pad, c]] for c in range(3)])  # [3, 1, 2]
    before = model.embed(codes).detach()
    (model.embed(codes[:1]) - target).pow(2).sum().backward()
    with torch.no_grad():
        proj = model.speech_code_map.proj.weight
        proj -= 0.1 * proj.grad
        moved = (model.embed(codes) - before).squeeze(1)
    assert torch.cosine_similarity(moved[0], moved[1], dim=0) > 0.99  # the twin follows
    assert torch.cosine_similarity(moved[0], moved[2], dim=0) < -0.99  # the opposite code goes away


def test_merging_keeps_every_embedding_and_leaves_a_plain_table():
    model = mapped_split(twin_vectors())
    with torch.no_grad():
        model.speech_code_map.proj.weight.normal_()
        grid = mixed_batch(model)
        before = model(grid)
        model.merge_code_map()
        after = model(grid)
    assert model.speech_code_map is None
    assert not any(n.startswith("speech_code_map.") for n in model.state_dict())
    torch.testing.assert_close(after.speech_logits, before.speech_logits)
    torch.testing.assert_close(after.text_logits, before.text_logits)


def test_off_by_default_and_a_wrong_number_of_vectors_is_one_line():
    _, plain = tiny_split()
    plain.init_code_vectors(torch.randn(N_CODES, 8))
    assert plain.speech_code_map is None
    with pytest.raises(ToolkitError, match="speech_code_map: 3 code vectors"):
        mapped_split(torch.randn(3, 8))


def head_mapped_split(vectors: torch.Tensor):
    model = toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=-2,
                          codebook_size=N_CODES, speech_head_code_map=True)
    model.init_code_vectors(vectors)
    model.tie_speech_head(vectors)
    return model


def test_a_tied_head_starts_as_the_plain_head_and_moves_twins_together():
    _, plain = tiny_split()
    model = head_mapped_split(twin_vectors())
    assert model.speech_code_map is None  # the embedding is not tied unless asked
    grid = mixed_batch(model)
    with torch.no_grad():
        torch.testing.assert_close(model(grid).speech_logits, plain(grid).speech_logits, rtol=0, atol=0)
    head = model.branches["speech"].head
    assert "branches.speech.head.map.proj.weight" in {n for n, _ in model.parameter_groups()["speech"]}
    hidden = torch.randn(4, model.speech_embed.weight.shape[1], generator=torch.Generator().manual_seed(0))
    before = head(hidden).detach()
    head(hidden)[:, 0].sum().neg().backward()  # raise code 0's score
    with torch.no_grad():
        head.map.proj.weight -= 0.1 * head.map.proj.weight.grad
        moved = head(hidden) - before
    assert (moved[:, 1] > 0).all() and (moved[:, 2] < 0).all()  # its twin rises, its opposite falls


def test_merging_a_tied_head_keeps_every_logit_and_leaves_a_plain_linear():
    model = head_mapped_split(twin_vectors())
    with torch.no_grad():
        model.branches["speech"].head.map.proj.weight.normal_()
        grid = mixed_batch(model)
        before = model(grid).speech_logits
        model.merge_code_map()
        after = model(grid).speech_logits
    assert type(model.branches["speech"].head) is torch.nn.Linear
    assert not any(".map." in n for n in model.state_dict())
    torch.testing.assert_close(after, before)
