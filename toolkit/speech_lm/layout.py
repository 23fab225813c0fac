"""The dual-channel sequence layout and the contract of a split model.

A sequence is a grid ``ids[L, 2]``: channel 0 holds text ids, channel 1 speech ids, and at each
position exactly one channel is live. A position is *speech-live* when its text id is
``modality_pad``; otherwise it is text-live. A speech segment of ``n`` codes takes ``n + 2``
positions::

    text   : sosp        pad  pad  ...  pad
    speech : speech_pad  c1   c2   ...  eosp

so ``sosp`` (a text token) announces speech and the speech head's ``eosp`` ends it. Speech ids
are ``0 .. n-1`` (codes), ``n`` (``eosp``), ``n + 1`` (``speech_pad``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

TEXT, SPEECH = 0, 1
"""Modality codes used in ``target_modality`` tensors (``IGNORE`` = not a target)."""
IGNORE = -1
BRANCHES = ("text", "speech")


@dataclass(frozen=True)
class SpecialTokens:
    """The special ids of a split model.

    ``sosp`` and ``modality_pad`` are text ids (claimed reserved tokens of the trunk, or rows
    appended to its vocabulary); ``eosp`` and ``speech_pad`` are speech ids.
    """

    sosp: int
    modality_pad: int
    eosp: int
    speech_pad: int
    text_vocab_size: int
    """Rows of the text embedding / text head (the trunk's, plus any appended)."""
    speech_vocab_size: int
    """Number of speech codes ``n`` (``eosp == n``)."""
    appended_text_rows: tuple[int, ...] = ()
    """Text ids added to the trunk's vocabulary (empty when reserved tokens were claimed)."""
    speech_rows: int = 0
    """Rows of the speech tables when a checkpoint fixes them (MOSS-Speech: 16512, with
    ``speech_pad`` = 512 inside the code range); 0 means ``speech_vocab_size + 2``."""

    @property
    def speech_table_size(self) -> int:
        """Rows of the speech embedding and the speech head: codes, ``eosp``, ``speech_pad``
        (or :attr:`speech_rows` when set)."""
        return self.speech_rows or self.speech_vocab_size + 2

    def to_dict(self) -> dict:
        out = asdict(self)
        out["appended_text_rows"] = list(self.appended_text_rows)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SpecialTokens":
        data = dict(data)
        data["appended_text_rows"] = tuple(data.get("appended_text_rows", ()))
        return cls(**data)


def text_positions(ids: list[int] | Tensor, tokens: SpecialTokens) -> Tensor:
    """Text ids ``[n]`` -> grid ``[n, 2]`` (speech channel ``speech_pad``)."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    return torch.stack([ids, torch.full_like(ids, tokens.speech_pad)], dim=-1)


def speech_positions(codes: list[int] | Tensor, tokens: SpecialTokens, open_: bool = True,
                     close: bool = True) -> Tensor:
    """Speech codes ``[n]`` -> grid ``[n + 2, 2]``: ``sosp`` position, codes, ``eosp``.

    ``open_=False`` drops the ``sosp`` position, ``close=False`` the ``eosp`` one (a prompt
    that ends inside a speech segment).
    """
    codes = torch.as_tensor(codes, dtype=torch.long).reshape(-1)
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= tokens.speech_vocab_size):
        from toolkit.errors import ToolkitError

        raise ToolkitError(f"speech code {int(codes.max())} is outside the speech vocabulary "
                           f"0..{tokens.speech_vocab_size - 1}")
    speech = codes
    if close:
        speech = torch.cat([speech, torch.tensor([tokens.eosp])])
    grid = torch.stack([torch.full_like(speech, tokens.modality_pad), speech], dim=-1)
    if open_:
        grid = torch.cat([torch.tensor([[tokens.sosp, tokens.speech_pad]]), grid])
    return grid


def live_modality(ids: Tensor, tokens: SpecialTokens) -> Tensor:
    """``ids[..., 2]`` -> ``[...]`` long: ``SPEECH`` where the speech channel is live, else ``TEXT``."""
    return (ids[..., 0] == tokens.modality_pad).long()


def live_token(ids: Tensor, tokens: SpecialTokens) -> Tensor:
    """``ids[..., 2]`` -> ``[...]``: the id of the live channel at each position."""
    return torch.where(ids[..., 0] == tokens.modality_pad, ids[..., 1], ids[..., 0])


def next_token_targets(ids: Tensor, loss_mask: Tensor, tokens: SpecialTokens) -> tuple[Tensor, Tensor]:
    """Shifted next-token targets of a grid.

    Args:
        ids: ``[L, 2]`` (or ``[B, L, 2]``) grid.
        loss_mask: ``[L]`` bool, True where the *token at that position* is to be predicted.
    Returns:
        ``labels[L]`` (id of the next live token, in its modality's vocabulary) and
        ``target_modality[L]`` (``TEXT``/``SPEECH``, or ``IGNORE`` where nothing is scored,
        including the last position).
    """
    token = live_token(ids, tokens)
    modality = live_modality(ids, tokens)
    modality = torch.where(loss_mask.bool(), modality, torch.full_like(modality, IGNORE))
    labels = torch.full_like(token, 0)
    target = torch.full_like(modality, IGNORE)
    labels[..., :-1] = token[..., 1:]
    target[..., :-1] = modality[..., 1:]
    labels = torch.where(target == IGNORE, torch.zeros_like(labels), labels)
    return labels, target


@dataclass
class SplitOutput:
    """Result of ``model(input_ids[B,L,2], branches=...)``: logits of the branches that ran."""

    text_logits: Tensor | None = None
    """``[B, L, text_vocab_size]`` or None."""
    speech_logits: Tensor | None = None
    """``[B, L, speech_table_size]`` or None."""


@dataclass
class SplitCaches:
    """Incremental-decoding state of a split model.

    ``shared``, ``text``, ``speech`` are :class:`toolkit.nn.KVCache` s. The branch caches may
    lag behind the shared one: ``split_hidden[B, S, D]`` keeps the hidden states at the split
    point (with their ``positions[B, S]`` and ``mask[B, S]``) so a lagging branch catches up
    in one batched pass when it is next needed.
    """

    shared: object
    text: object
    speech: object
    split_hidden: Tensor | None = None
    positions: Tensor | None = None
    mask: Tensor | None = None
    offset: int = 0
    """Absolute index of ``split_hidden[:, 0]`` (older states are dropped once both caught up)."""
    length: int = 0
    """Positions processed by the shared blocks."""
    lengths: dict = field(default_factory=lambda: {"text": 0, "speech": 0})
    """Positions processed by each branch (``<= length``)."""
    adapter: object = None
    """The :class:`toolkit.nn.KVCache` of a splitter's speech input layers, when it has any."""
    reader: object = None
    """A splitter's own state for local speech readers (e.g. the last inputs of a causal
    convolution), when it has one."""
    compress: object = None
    """A splitter's own state for hiding speech positions from later ones, when it has one."""


__all__ = ["TEXT", "SPEECH", "IGNORE", "BRANCHES", "SpecialTokens", "text_positions",
           "speech_positions", "live_modality", "live_token", "next_token_targets",
           "SplitOutput", "SplitCaches"]
