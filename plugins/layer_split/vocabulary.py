"""The split model's text vocabulary: the trunk's embedding and head, with the two special text
ids a split model needs (``sosp``, ``modality_pad``) claimed or appended."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toolkit.speech_lm.layout import SpecialTokens


def normal(shape: tuple[int, ...], std: float, gen: torch.Generator) -> Tensor:
    """A ``shape`` tensor of normal draws with standard deviation ``std`` from ``gen``."""
    return torch.randn(shape, generator=gen) * std


def text_vocabulary(trunk: nn.Module, n_codes: int,
                    gen: torch.Generator) -> tuple[nn.Embedding, nn.Linear, SpecialTokens]:
    """The text embedding and head, with ``sosp``/``modality_pad`` claimed from the trunk's
    reserved tokens, or appended as two new rows (of embedding and head) when it has none."""
    embed, head = trunk.embed_tokens, trunk.lm_head
    vocab = embed.num_embeddings
    reserved = [int(i) for i in (trunk.config.reserved_token_ids or ()) if 0 <= int(i) < vocab]
    if len(reserved) >= 2:
        tokens = SpecialTokens(reserved[0], reserved[1], n_codes, n_codes + 1, vocab, n_codes)
        return embed, head, tokens
    tied = head.weight is embed.weight
    weight = embed.weight.detach()
    std = float(weight.float().std())
    new_embed = nn.Embedding(vocab + 2, weight.shape[1]).to(weight.device, weight.dtype)
    with torch.no_grad():
        new_embed.weight[:vocab] = weight
        new_embed.weight[vocab:] = normal((2, weight.shape[1]), std, gen)
    new_head = nn.Linear(weight.shape[1], vocab + 2, bias=head.bias is not None)
    new_head.to(weight.device, weight.dtype)
    if tied:
        new_head.weight = new_embed.weight
    else:
        with torch.no_grad():
            hw = head.weight.detach()
            new_head.weight[:vocab] = hw
            new_head.weight[vocab:] = normal((2, hw.shape[1]), float(hw.float().std()), gen)
            if head.bias is not None:
                new_head.bias[:vocab] = head.bias
                new_head.bias[vocab:] = 0
    tokens = SpecialTokens(vocab, vocab + 1, n_codes, n_codes + 1, vocab + 2, n_codes,
                           appended_text_rows=(vocab, vocab + 1))
    return new_embed, new_head, tokens


__all__ = ["normal", "text_vocabulary"]
