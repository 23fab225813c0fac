"""Speech compression (``speech_compress``): the trunk sees one position per spelled token.

Checked against the sequence with the hidden frames physically removed, and cached decoding
against the full pass; with ``speech_snap`` against the spelled tokens given as text."""

from __future__ import annotations

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError
from toolkit.speech_lm import speech_positions, text_positions
from plugins.layer_split.speech_compress import visible_positions

from speech_lm_helpers import N_CODES, ByteChat, assert_cached_equals_full, tiny_trunk

A, B, C, SILENT = 3, 4, 5, 6  # codes that spell three text tokens, and one that spells nothing


def spelling_split(compress: bool, snap: bool = False):
    """A split model whose speech embedding spells text tokens 40, 41, 42 for codes A, B, C (the
    rows are those tokens' text embeddings) and a blank for every other code (zero rows)."""
    model = toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=-2, codebook_size=N_CODES,
                          speech_compress=compress, speech_snap=snap)
    model.text_tokenizer = ByteChat()
    with torch.no_grad():
        model.speech_embed.weight.zero_()
        for code, token in ((A, 40), (B, 41), (C, 42)):
            model.speech_embed.weight[code] = model.embed_tokens.weight[token] * 3
        model.speech_embed.weight[model.tokens.eosp].normal_(generator=torch.Generator().manual_seed(0))
    return model


def grid_of(codes: list[int], model) -> torch.Tensor:
    text = text_positions(torch.arange(20, 26), model.tokens)
    return torch.cat([text_positions([30], model.tokens), speech_positions(codes, model.tokens), text])[None]


def test_hidden_frames_are_as_if_removed():
    """Blanks and repeats are invisible: the text after ``A A _ B B B _ _ C _`` is predicted
    exactly as after ``A B C`` (same positions, same keys)."""
    stuttered, clean = [A, A, SILENT, B, B, B, SILENT, SILENT, C, SILENT], [A, B, C]
    model = spelling_split(compress=True)
    with torch.no_grad():
        long = model(grid_of(stuttered, model)).text_logits[0, -6:]
        short = spelling_split(compress=False)(grid_of(clean, model)).text_logits[0, -6:]
        plain = spelling_split(compress=False)(grid_of(stuttered, model)).text_logits[0, -6:]
    torch.testing.assert_close(long, short, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(plain, short, rtol=1e-3, atol=1e-3)


def test_a_token_spelled_twice_with_a_blank_between_stays_twice():
    model = spelling_split(compress=True)
    with torch.no_grad():
        twice = model(grid_of([A, SILENT, A], model)).text_logits[0, -6:]
        once = model(grid_of([A, A, A], model)).text_logits[0, -6:]
        clean_twice = spelling_split(compress=False)(grid_of([A, A], model)).text_logits[0, -6:]
    torch.testing.assert_close(twice, clean_twice, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(twice, once, rtol=1e-3, atol=1e-3)


def test_cached_decoding_hides_the_same_frames():
    model = spelling_split(compress=True)
    grid = grid_of([A, A, SILENT, B, C, C, SILENT, A], model)
    with torch.no_grad():
        assert_cached_equals_full(model, grid, prefix=4)


def test_snapped_speech_reads_exactly_like_its_spelling_as_text():
    """With ``speech_snap`` the text after ``A A _ B B B _ _ C _`` is predicted as after the
    text tokens 40 41 42 in place of the frames (the rows are 3x those embeddings, so
    without the snap it differs)."""
    stuttered = [A, A, SILENT, B, B, B, SILENT, SILENT, C, SILENT]
    model = spelling_split(compress=True, snap=True)
    speech = grid_of(stuttered, model)
    as_text = torch.cat([speech[:, :2], text_positions([40, 41, 42], model.tokens)[None], speech[:, -7:]], 1)
    with torch.no_grad():
        snapped = model(speech).text_logits[0, -6:]
        text = spelling_split(compress=False)(as_text).text_logits[0, -6:]
        unsnapped = spelling_split(compress=True)(speech).text_logits[0, -6:]
    torch.testing.assert_close(snapped, text, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unsnapped, text, rtol=1e-3, atol=1e-3)


def test_snap_without_compress_is_a_clear_error():
    with pytest.raises(ToolkitError, match="speech_snap needs speech_compress"):
        spelling_split(compress=False, snap=True)


def test_the_speech_branch_sees_the_frames_the_trunk_does_not():
    """A repeat frame (hidden) changed for another code that spells the same token leaves every
    later text logit as it was (the trunk never sees it) but changes the speech logits after
    it: to say a word the speech branch must see the codes of it said so far, most of which
    spell nothing new."""
    model = spelling_split(compress=True)
    with torch.no_grad():
        model.speech_embed.weight[7] = model.speech_embed.weight[A] * 2  # spells A's token too
    same, other = grid_of([A, A, SILENT, B, C], model), grid_of([A, 7, SILENT, B, C], model)
    with torch.no_grad():
        for g in (same, other):
            is_speech = g[..., 0] == model.tokens.modality_pad
            visible = visible_positions(model.embed(g), is_speech, torch.zeros_like(is_speech),
                                        model.embed_tokens.weight)[0]
            assert not visible[0, 3], "precondition: frame 3 (the second code) is hidden in both grids"
        a, b = model(same), model(other)
    torch.testing.assert_close(a.text_logits[:, 4:], b.text_logits[:, 4:], rtol=0, atol=0)
    assert not torch.allclose(a.speech_logits[:, 4:], b.speech_logits[:, 4:], rtol=1e-4, atol=1e-4)


def test_branches_that_take_turns_in_cached_decoding_match_the_full_pass():
    """Generation runs only the branch it needs; the other catches up later on stored states.
    Under compression the two branches see the sequence differently (the speech branch every
    frame at its plain position), and a left-padded batch must still match the full pass."""
    model = spelling_split(compress=True, snap=True)
    rows = [grid_of([A, A, SILENT, B, C, C, SILENT, A], model)[0], grid_of([B, SILENT, C], model)[0]]
    width = max(len(r) for r in rows)
    pad = text_positions([0], model.tokens)[0]
    grid = torch.stack([torch.cat([pad.expand(width - len(r), 2), r]) for r in rows])
    mask = torch.stack([torch.arange(width) >= width - len(r) for r in rows]).long()
    with torch.no_grad():
        full = model(grid, attention_mask=mask)
        caches, prefix = model.new_caches(), 6
        model(grid[:, :prefix], ("text",), mask[:, :prefix], caches)
        for t in range(prefix, width):
            branch = "speech" if t % 3 else "text"
            out = model(grid[:, t:t + 1], (branch,), mask[:, :t + 1], caches)
            got = getattr(out, f"{branch}_logits")[:, 0]
            torch.testing.assert_close(got, getattr(full, f"{branch}_logits")[:, t], rtol=1e-5, atol=1e-5)
