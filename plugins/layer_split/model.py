"""The modality-split model: shared lower blocks, parallel text and speech branches on top.

Written only against toolkit's public API (``toolkit.nn``, ``toolkit.kernels``,
``toolkit.speech_lm.layout``), as a third-party splitter would be.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from toolkit.registry import API_VERSION
from toolkit.contracts import SplitModel
from toolkit.errors import ToolkitError
from toolkit.nn import AttentionContext, KVCache, positions_and_padding
from toolkit.params import runtime
from toolkit.speech_lm.layout import BRANCHES, SplitCaches, SplitOutput
from plugins.layer_split.branches import Branch, identity_copy, reinit_block, run_branches
from plugins.layer_split.code_map import CodeMap, CodeTiedHead
from plugins.layer_split.speech_compress import CompressState, compressed_positions, visible_positions
from plugins.layer_split.speech_lora import SpeechLoRA
from plugins.layer_split.speech_reader import SpeechReader
from plugins.layer_split.vocabulary import normal, text_vocabulary

SPEECH_PREFIXES = ("speech_embed.", "speech_code_map.", "speech_reader.", "speech_adapter.", "speech_lora.",
                   "branches.speech.")


class LayerSplitModel(SplitModel):
    """Shared blocks ``[0, k)`` of a trunk, then a text branch (the trunk's own top blocks,
    final norm and head) and a speech branch (copies or fresh blocks, own norm, speech head).

    ``model(input_ids[B,L,2], branches=("text", "speech"))`` -> :class:`SplitOutput`; the
    special ids are on ``model.tokens``. State-dict prefixes: ``embed_tokens``, ``speech_embed``,
    ``speech_adapter.{i}`` (when ``speech_adapter_layers`` > 0),
    ``shared.{i}``, ``branches.text.{layers,norm,head}``, ``branches.speech.{layers,norm,head}``.
    """

    api_version = API_VERSION

    @dataclass
    class Params:
        trunk: Any = runtime()
        split_at: int = -4
        """First branch layer: ``k`` in ``1..N-1``, or negative from the top (``-4``: last 4)."""
        codebook_size: int = 1024
        """Number of speech codes: the speech tokenizer's ``codebook_size`` (the LM stages set it
        from the trained tokenizer; a recipe value must match it)."""
        init: Literal["copy", "random"] = "copy"
        """Speech branch layers: copies of the trunk's top layers, or freshly initialised."""
        seed: int = 0
        """Seed of every newly initialised tensor (speech embedding/head, appended rows)."""
        speech_adapter_layers: int = 0
        """Causal blocks that compose speech embeddings before the shared blocks (speech
        positions only; copies of the trunk's first blocks whose output projections start at
        zero, so they start as the identity). Part of the speech side: stage I trains them."""
        speech_reader_layers: int = 0
        """Causal convolution blocks that read the speech embeddings locally before anything
        else sees them (0: none; see :mod:`plugins.layer_split.speech_reader`). Each sees
        ``speech_reader_kernel`` codes, so the reader hears ``layers * (kernel - 1) + 1`` codes
        (13 at 12.5 Hz: about a second). Part of the speech side: stage I trains it."""
        speech_reader_kernel: int = 5
        """Taps of each reader convolution."""
        speech_reader_width: int = 256
        """Channels of each reader convolution."""
        speech_lora_rank: int = 0
        """Rank of low-rank adapters on the shared blocks that act on speech positions only
        (0: none; see :mod:`plugins.layer_split.speech_lora`). Part of the speech side."""
        speech_lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
        """Linears of each shared block that get a speech adapter."""
        speech_lora_alpha: float = 16.0
        """Adapter scale numerator: the delta is ``alpha / rank * B @ A``."""
        speech_code_map: bool = False
        """While a stage trains a fresh speech embedding, tie its rows to the tokenizer's code
        vectors through one shared linear map (see :mod:`plugins.layer_split.code_map`);
        folded into the table when the stage ends."""
        speech_head_code_map: bool = False
        """The same for the speech head's rows (:class:`plugins.layer_split.code_map.CodeTiedHead`)."""
        speech_compress: bool = False
        """Hide speech frames that spell no new token from the shared blocks and the text branch
        (see :mod:`plugins.layer_split.speech_compress`): the trunk reads one position per
        spelled token, while the speech branch still sees every frame. Meant with a reader
        trained by the hearing warm-up."""
        speech_snap: bool = False
        """With ``speech_compress``: each visible frame enters the trunk as the exact text
        embedding of the token it spells (no gradient through the choice), so the trunk reads
        the spelling as text. A discrete text bottleneck inside the model, close to an ASR
        cascade: an experiment that measures how far exact reading goes."""

    def __init__(self, params: "LayerSplitModel.Params") -> None:
        super().__init__()
        trunk = params.trunk
        if trunk is None:
            raise ToolkitError("splitter layer_split needs a trunk: build it with trunk=<Trunk>")
        n_layers = len(trunk.layers)
        k = params.split_at if params.split_at >= 0 else n_layers + params.split_at
        if not 0 < k < n_layers:
            raise ToolkitError(f"split_at={params.split_at} is outside the trunk: it has {n_layers}"
                               f" layers, so use 1..{n_layers - 1} or -{n_layers - 1}..-1")
        if params.speech_snap and not params.speech_compress:
            raise ToolkitError("splitter.params.speech_snap needs speech_compress: true (it snaps the visible frames)")
        if params.codebook_size < 1:
            raise ToolkitError(f"codebook_size={params.codebook_size} must be positive")
        self.params = params
        self.config = trunk.config
        self.split_at = k
        self.rotary = trunk.rotary
        self.text_tokenizer = getattr(trunk, "text_tokenizer", None)
        gen = torch.Generator().manual_seed(params.seed)
        self.embed_tokens, text_head, self.tokens = text_vocabulary(trunk, params.codebook_size, gen)
        weight = trunk.embed_tokens.weight
        dim = weight.shape[1]
        self.shared = nn.ModuleList(trunk.layers[:k])
        top = list(trunk.layers[k:])
        speech_layers = [copy.deepcopy(b) for b in top]
        if params.init == "random":
            for block in speech_layers:
                reinit_block(block, gen)
        speech_head = nn.Linear(dim, self.tokens.speech_table_size, bias=False)
        speech_head.to(weight.device, weight.dtype)
        head_std = float(text_head.weight.detach().float().std())
        with torch.no_grad():
            speech_head.weight.copy_(normal(speech_head.weight.shape, head_std, gen))
        self.branches = nn.ModuleDict({
            "text": Branch(nn.ModuleList(top), trunk.norm, text_head),
            "speech": Branch(nn.ModuleList(speech_layers), copy.deepcopy(trunk.norm), speech_head),
        })
        self.speech_adapter = nn.ModuleList(identity_copy(b) for b in trunk.layers[:params.speech_adapter_layers])
        self.speech_embed = nn.Embedding(self.tokens.speech_table_size, dim).to(weight.device, weight.dtype)
        with torch.no_grad():
            emb_std = float(weight.detach().float().std())
            self.speech_embed.weight.copy_(normal(self.speech_embed.weight.shape, emb_std, gen))
        self.speech_lora = (SpeechLoRA(self.shared, params.speech_lora_rank, tuple(params.speech_lora_targets),
                                       params.speech_lora_alpha, gen) if params.speech_lora_rank else None)
        self.speech_code_map: CodeMap | None = None
        self.speech_reader = (SpeechReader(dim, params.speech_reader_layers, params.speech_reader_kernel,
                                           params.speech_reader_width, gen).to(weight.device, weight.dtype)
                              if params.speech_reader_layers else None)

    # ------------------------------------------------------------------ public API
    def forward(self, input_ids: Tensor, branches: tuple[str, ...] = BRANCHES,
                attention_mask: Tensor | None = None, caches: SplitCaches | None = None) -> SplitOutput:
        """``input_ids[B,L,2]`` -> logits of the requested ``branches`` for the ``L`` positions.

        ``attention_mask[B,S]`` (1 = real token) covers cached + new positions. With ``caches``
        (from :meth:`new_caches`) the call is incremental; a branch that lagged behind first
        catches up on the stored split-point states in the same pass.
        """
        hidden = self.forward_hidden(input_ids, branches, attention_mask, caches)
        return SplitOutput(**{f"{b}_logits": self.head(b, h) for b, h in hidden.items()})

    def forward_hidden(self, input_ids: Tensor, branches: tuple[str, ...] = BRANCHES,
                       attention_mask: Tensor | None = None,
                       caches: SplitCaches | None = None) -> dict[str, Tensor]:
        """Like :meth:`forward` but returns each branch's final-normed states ``[B,L,D]``
        (apply :meth:`head` to the positions that need logits)."""
        branches = _check_branches(branches)
        if input_ids.ndim != 3 or input_ids.shape[-1] != 2:
            raise ToolkitError(f"input_ids must be [B, L, 2] (text, speech channels); got "
                               f"{tuple(input_ids.shape)}")
        past = caches.length if caches is not None else 0
        new = input_ids.shape[1]
        if past + new > self.config.max_position:
            raise ToolkitError(f"sequence of {past + new} positions is longer than the trunk's "
                               f"context of {self.config.max_position}")
        x = self._read(input_ids, self.embed(input_ids), caches)
        plain = positions_and_padding(input_ids[..., 0], attention_mask, past)
        views = {"text": plain, "speech": plain}
        if getattr(self.params, "speech_compress", False):  # a subclass's Params may lack it
            x, views["text"] = self._compress(input_ids, x, attention_mask, caches)
        ctx = self.context(*views["text"], x.dtype)
        if len(self.speech_adapter):
            x = self._adapt(input_ids, x, ctx, caches.adapter if caches is not None else None)
        x = self._run_shared(input_ids, x, ctx, caches)
        if caches is not None:
            return self._cached_branches(branches, x, views, caches)
        out: dict[str, Tensor] = {}
        for group in _same_view_groups(branches, views):
            ctx = self.context(*views[group[0]], x.dtype)
            for b, h in zip(group, run_branches([self.branches[b] for b in group], [x] * len(group), ctx, None)):
                out[b] = self.branches[b].norm(h)
        return out

    def _run_shared(self, input_ids: Tensor, x: Tensor, ctx: AttentionContext,
                    caches: SplitCaches | None) -> Tensor:
        """The shared blocks on ``x[B,L,D]``, with the speech adapters on speech positions."""
        lora = self.speech_lora
        if lora is not None:
            is_speech = (input_ids[..., 0] == self.tokens.modality_pad)[..., None]
            lora.speech_mask = is_speech if bool(is_speech.any()) else None
        try:
            for i, block in enumerate(self.shared):
                x = block(x, ctx, kv=caches.shared[i] if caches is not None else None)
        finally:
            if lora is not None:
                lora.speech_mask = None
        return x

    def head(self, branch: str, hidden: Tensor) -> Tensor:
        """Logits of ``branch``'s head for normed states ``hidden[..., D]``."""
        return self.branches[branch].head(hidden)

    def embed(self, input_ids: Tensor) -> Tensor:
        """``input_ids[B,L,2]`` -> ``[B,L,D]``: text embedding, or speech embedding where the
        text channel holds ``modality_pad``."""
        text_ids, speech_ids = input_ids.unbind(-1)
        is_speech = (text_ids == self.tokens.modality_pad)[..., None]
        speech = self.speech_embed(speech_ids)
        if self.speech_code_map is not None:
            speech = speech + self.speech_code_map(speech_ids)
        return torch.where(is_speech, speech, self.embed_tokens(text_ids))

    def init_code_vectors(self, vectors: Tensor) -> None:
        """Hook called before a stage trains a fresh speech embedding, with the tokenizer's
        ``code_vectors()`` ``[codebook_size, C]``: with ``speech_code_map`` on, rows are tied
        to them until :meth:`merge_code_map`; otherwise nothing."""
        if getattr(self.params, "speech_code_map", False):  # a subclass may not have it
            weight = self._checked(vectors, "speech_code_map")
            self.speech_code_map = CodeMap(vectors, weight.shape[0], weight.shape[1]).to(weight.device, weight.dtype)

    def tie_speech_head(self, vectors: Tensor) -> None:
        """Hook called before every LM stage trains: with ``speech_head_code_map`` on, the speech
        head's rows are tied to the code vectors until :meth:`merge_code_map`."""
        branch = self.branches["speech"]
        if getattr(self.params, "speech_head_code_map", False) and not isinstance(branch.head, CodeTiedHead):
            self._checked(vectors, "speech_head_code_map")
            branch.head = CodeTiedHead(branch.head, vectors)

    def _checked(self, vectors: Tensor, option: str) -> Tensor:
        if vectors.shape[0] != self.tokens.speech_vocab_size:
            raise ToolkitError(f"{option}: {vectors.shape[0]} code vectors for "
                               f"{self.tokens.speech_vocab_size} speech codes")
        return self.speech_embed.weight

    @torch.no_grad()
    def merge_code_map(self) -> None:
        """Fold the code maps into the speech table and head (the same model, plain tensors)."""
        if self.speech_code_map is not None:
            self.speech_embed.weight.add_(self.speech_code_map.table())
            self.speech_code_map = None
        branch = self.branches["speech"]
        if isinstance(branch.head, CodeTiedHead):
            branch.head = branch.head.merged()

    def speech_input(self, input_ids: Tensor) -> Tensor:
        """``input_ids[B,L,2]`` (right-padded, uncached) -> ``[B,L,D]``: what the shared blocks
        receive, i.e. the embeddings with the speech adapter's output at speech positions."""
        x = self._read(input_ids, self.embed(input_ids), None)
        if len(self.speech_adapter):
            positions, key_padding = positions_and_padding(input_ids[..., 0], None, 0)
            x = self._adapt(input_ids, x, self.context(positions, key_padding, x.dtype), None)
        return x

    def _read(self, input_ids: Tensor, x: Tensor, caches: SplitCaches | None) -> Tensor:
        """``x[B,L,D]`` with speech positions replaced by the speech reader's output (text
        positions bit for bit); with ``caches`` the reader continues from their history."""
        if self.speech_reader is None:
            return x
        is_speech = input_ids[..., 0] == self.tokens.modality_pad
        read, past = self.speech_reader(x, is_speech, caches.reader if caches is not None else None)
        if caches is not None:
            caches.reader = past
        return torch.where(is_speech[..., None], read, x)

    def _compress(self, input_ids: Tensor, x: Tensor, attention_mask: Tensor | None,
                  caches: SplitCaches | None) -> tuple[Tensor, tuple[Tensor, Tensor | None]]:
        """``x[B,L,D]`` (with ``speech_snap``, spelling frames replaced by their token's text
        embedding) and the trunk's view of the sequence: ``positions[B,L]`` counted over visible
        positions and ``key_padding[B,S]`` with the speech frames that spell no new token hidden
        (None: all visible); with ``caches`` earlier positions' visibility comes from them."""
        is_speech = input_ids[..., 0] == self.tokens.modality_pad
        markers = is_speech & (input_ids[..., 1] == self.tokens.eosp)
        state = caches.compress if caches is not None else None
        visible, last, spelled = visible_positions(x, is_speech, markers, self.embed_tokens.weight,
                                                   state.last if state is not None else None)
        if getattr(self.params, "speech_snap", False):
            snapped = self.embed_tokens(spelled.clamp(min=0)).to(x.dtype)
            x = torch.where((spelled >= 0)[..., None], snapped, x)
        if state is not None:
            visible = torch.cat([state.visible, visible], 1)
        if caches is not None:
            caches.compress = CompressState(visible, last, state.speech_positions if state is not None else None)
        if attention_mask is not None:
            visible = visible & attention_mask.bool()
        positions = compressed_positions(visible, input_ids.shape[1])
        return x, (positions, None if bool(visible.all()) else visible)

    def _adapt(self, input_ids: Tensor, x: Tensor, ctx: AttentionContext, cache) -> Tensor:
        """``x[B,L,D]`` with speech positions replaced by the speech adapter's output (text
        positions are returned bit for bit, so the text path is untouched)."""
        h = x
        for i, block in enumerate(self.speech_adapter):
            h = block(h, ctx, kv=cache[i] if cache is not None else None)
        return torch.where((input_ids[..., 0] == self.tokens.modality_pad)[..., None], h, x)

    def context(self, positions: Tensor, key_padding: Tensor | None, dtype: torch.dtype) -> AttentionContext:
        """The :class:`AttentionContext` for ``positions[B,L]`` and ``key_padding[B,S]``."""
        return AttentionContext(positions, key_padding, self.rotary(positions, dtype=dtype))

    def new_caches(self) -> SplitCaches:
        """Empty caches for incremental decoding."""
        n_top = len(self.branches["text"].layers)
        return SplitCaches(KVCache(len(self.shared)), KVCache(n_top), KVCache(n_top),
                           adapter=KVCache(len(self.speech_adapter)) if len(self.speech_adapter) else None)

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Named parameters by side: ``text`` (text embedding, shared blocks, text branch)
        and ``speech`` (speech embedding, speech branch). Tied weights appear once."""
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"text": [], "speech": []}
        for name, p in self.named_parameters():
            side = "speech" if name.startswith(SPEECH_PREFIXES) else "text"
            groups[side].append((name, p))
        return groups

    # ------------------------------------------------------------------ caching
    def _cached_branches(self, branches: tuple[str, ...], x: Tensor,
                         views: dict[str, tuple[Tensor, Tensor | None]], caches: SplitCaches) -> dict[str, Tensor]:
        """Run ``branches`` on the new split-point states ``x[B,L,D]``, each branch first catching
        up on the stored states it missed; ``views[b]`` is branch ``b``'s ``(positions[B,L],
        key_padding[B,S])``."""
        new = x.shape[1]
        caches.split_hidden = _appended(caches.split_hidden, x)
        caches.positions = _appended(caches.positions, views["text"][0])
        compress = caches.compress
        if compress is not None:
            compress.speech_positions = _appended(compress.speech_positions, views["speech"][0])
        stored = {"text": caches.positions,
                  "speech": compress.speech_positions if compress is not None else caches.positions}
        caches.length += new
        starts = {b: caches.lengths[b] for b in branches}
        out: dict[str, Tensor] = {}
        for group in _same_view_groups(branches, views, starts):
            start = starts[group[0]] - caches.offset
            ctx = self.context(stored[group[0]][:, start:], views[group[0]][1], x.dtype)
            seg = caches.split_hidden[:, start:]
            hs = run_branches([self.branches[b] for b in group], [seg] * len(group), ctx,
                              [getattr(caches, b) for b in group])
            for b, h in zip(group, hs):
                out[b] = self.branches[b].norm(h[:, -new:])
                caches.lengths[b] = caches.length
        drop = min(caches.lengths.values()) - caches.offset
        if drop > 0:
            caches.split_hidden = caches.split_hidden[:, drop:]
            caches.positions = caches.positions[:, drop:]
            if compress is not None:
                compress.speech_positions = compress.speech_positions[:, drop:]
            caches.offset += drop
        return out


def _appended(stored: Tensor | None, new: Tensor) -> Tensor:
    """``new[B,L,...]`` after ``stored[B,S,...]`` along the sequence (or ``new`` alone)."""
    return new if stored is None else torch.cat([stored, new], 1)


def _same_view_groups(branches: tuple[str, ...], views: dict, starts: dict | None = None) -> list[tuple[str, ...]]:
    """``branches`` as one group when they see the same view of the sequence (and, cached,
    start from the same stored position), so they run side by side; else one group each."""
    together = views["text"] is views["speech"] and (starts is None or len(set(starts.values())) == 1)
    return [branches] if together or len(branches) == 1 else [(b,) for b in branches]


def _check_branches(branches: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    if isinstance(branches, str):
        branches = (branches,)
    branches = tuple(b for b in BRANCHES if b in branches)  # canonical order, no duplicates
    if not branches:
        raise ToolkitError("branches must name at least one of 'text', 'speech'")
    return branches


__all__ = ["LayerSplitModel"]
