"""The local speech reader (``speech_reader_layers``): identity at start, text untouched,
causal with a bounded receptive field, cached decoding equal to the full pass, and trained as
part of the speech side."""

from __future__ import annotations

import pytest
import torch

import toolkit
from toolkit.speech_lm import speech_positions, text_positions

from speech_lm_helpers import N_CODES, ByteChat, assert_cached_equals_full, mixed_batch, tiny_split, tiny_trunk

LAYERS, KERNEL = 2, 3


def read_split(perturb: bool = True):
    model = toolkit.build("splitter", "layer_split", trunk=tiny_trunk(), split_at=-2, codebook_size=N_CODES,
                          speech_reader_layers=LAYERS, speech_reader_kernel=KERNEL, speech_reader_width=8)
    model.text_tokenizer = ByteChat()
    if perturb:  # a trained reader: its output projections no longer zero
        with torch.no_grad():
            for p in model.speech_reader.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5)) * 0.3)
    return model


def test_reader_starts_as_identity_and_never_touches_text():
    _, plain = tiny_split()
    fresh, model = read_split(perturb=False), read_split()
    grid = mixed_batch(model)
    text_only = torch.stack([text_positions(torch.arange(10, 20), model.tokens)])
    with torch.no_grad():
        torch.testing.assert_close(fresh(grid).speech_logits, plain(grid).speech_logits, rtol=0, atol=0)
        assert not torch.allclose(model(grid).speech_logits, plain(grid).speech_logits)
        assert torch.equal(model(text_only).text_logits, plain(text_only).text_logits)
    assert {n for n, _ in model.parameter_groups()["speech"]} >= {
        n for n, _ in model.named_parameters() if n.startswith("speech_reader.")}


def test_reader_is_causal_and_local():
    """Each read position depends on itself and the previous ``LAYERS * (KERNEL - 1)`` speech
    positions only: zero gradient to the future and to the far past."""
    model = read_split()
    codes = torch.randint(0, N_CODES, (12,), generator=torch.Generator().manual_seed(1))
    grid = speech_positions(codes, model.tokens)[None]
    x = model.embed(grid).detach().requires_grad_(True)
    is_speech = grid[..., 0] == model.tokens.modality_pad
    read, _ = model.speech_reader(x, is_speech)
    reach = LAYERS * (KERNEL - 1)
    speech = is_speech[0].nonzero().flatten().tolist()  # after <sosp>: 1 .. 13
    for t in speech:
        (grad,) = torch.autograd.grad(read[0, t].sum(), x, retain_graph=True)
        touched = grad[0].abs().sum(-1).nonzero().flatten().tolist()
        assert touched == list(range(max(t - reach, speech[0]), t + 1)), (t, touched)
    assert model.speech_reader.history == reach


def test_reader_reads_codes_only():
    """Text positions enter the reader as zeros: what text precedes a stretch of speech does
    not change how it is read."""
    model = read_split()
    t = model.tokens
    codes = speech_positions(torch.arange(6), t)
    a = torch.cat([text_positions(torch.tensor([1, 2, 3]), t), codes])
    b = torch.cat([text_positions(torch.tensor([9, 8, 7]), t), codes])
    with torch.no_grad():
        read = model.speech_input(torch.stack([a, b]))
    # equal up to float summation order (the conv may block the two rows differently); a
    # leak of the text would differ by the size of an embedding (~0.1)
    torch.testing.assert_close(read[0, 3:], read[1, 3:])


@pytest.mark.parametrize("prefix", [1, 5])
def test_reader_cached_forward_equals_full_forward(prefix):
    model = read_split()
    assert_cached_equals_full(model, mixed_batch(model), prefix=prefix)
