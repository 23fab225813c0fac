"""Start the speech embedding where the frozen trunk can already read it.

A random speech table gives stage I nothing to build on: the frozen trunk must learn to read
1,000-odd arbitrary vectors. ``aligned`` initialisation instead sets each code's row to the
mean text embedding of the words it is heard in: every training utterance's codes are laid
against its transcript's text tokens in proportion to their letters (espeak-ng speaks letters
at a roughly even pace), and each code collects the embedding of the token it falls on. A
sequence of speech rows then reads like a slurred spelling of the transcript, which the
trunk's own layers already make sense of; stage I refines it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from toolkit.contracts import TextTokenizer


def letter_aligned_tokens(n_codes: int, token_ids: list[int], tok: TextTokenizer) -> Tensor:
    """The text token each of ``n_codes`` evenly spaced codes falls on -> ``[n_codes]`` ids,
    with time spread over the tokens in proportion to their letters."""
    widths = torch.tensor([max(1, len(tok.decode([t]).strip())) for t in token_ids], dtype=torch.float)
    ends = torch.cumsum(widths, 0) / widths.sum()
    centres = (torch.arange(n_codes, dtype=torch.float) + 0.5) / n_codes
    index = torch.searchsorted(ends, centres).clamp(max=len(token_ids) - 1)
    return torch.as_tensor(token_ids, dtype=torch.long)[index]


@torch.no_grad()
def aligned_speech_rows(pairs: Iterable[tuple[Tensor, str]], tok: TextTokenizer, text_embed: Tensor,
                        n_codes: int) -> tuple[Tensor, Tensor]:
    """Mean text embedding per code over ``(codes[n], transcript)`` pairs.

    Returns ``rows[n_codes, D]`` (zeros for codes never seen) and ``counts[n_codes]``."""
    dim = text_embed.shape[1]
    sums = torch.zeros(n_codes, dim)
    counts = torch.zeros(n_codes)
    for codes, text in pairs:
        ids = tok.encode(text)
        if not ids or codes.numel() == 0:
            continue
        aligned = letter_aligned_tokens(codes.numel(), ids, tok)
        sums.index_add_(0, codes.long(), text_embed[aligned].float())
        counts.index_add_(0, codes.long(), torch.ones(codes.numel()))
    rows = sums / counts.clamp(min=1)[:, None]
    return rows, counts


@torch.no_grad()
def init_aligned(model, pairs: Iterable[tuple[Tensor, str]], noise: float = 0.1) -> int:
    """Set ``model.speech_embed`` rows of seen codes to their aligned text mean, plus ``noise``
    times the table's current (random) rows so codes that share a token stay apart.
    Returns how many codes were set."""
    table = model.speech_embed.weight
    n_codes = model.tokens.speech_vocab_size
    rows, counts = aligned_speech_rows(pairs, model.text_tokenizer, model.embed_tokens.weight.detach().cpu(),
                                       n_codes)
    seen = counts > 0
    new = rows[seen].to(table) + noise * table[:n_codes][seen]
    table[:n_codes][seen] = new
    return int(seen.sum())


__all__ = ["letter_aligned_tokens", "aligned_speech_rows", "init_aligned"]
