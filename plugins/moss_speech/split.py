"""The ``moss_split`` splitter: a ``moss_speech`` trunk assembled into the split model as the
checkpoint defines it (no copies, no fresh weights)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from toolkit.registry import API_VERSION
from toolkit.errors import ToolkitError
from toolkit.params import runtime
from toolkit.speech_lm.layout import SpecialTokens

from plugins.layer_split.branches import Branch
from plugins.layer_split.model import LayerSplitModel


class MossSplitModel(LayerSplitModel):
    """MOSS-Speech as a :class:`~plugins.layer_split.model.LayerSplitModel`: ``shared`` = the
    checkpoint's shared block, ``branches.text`` = text block + ``text_norm`` + ``text_lm_head``,
    ``branches.speech`` = audio block + ``audio_norm`` + ``audio_lm_head``, ``speech_embed`` =
    ``audio_embed`` (``[A, D]``, ``A`` = ``audio_vocab_size``).

    Special ids are the checkpoint's: ``sosp`` / ``modality_pad`` (text), ``eosp`` (= codebook
    size) and ``speech_pad`` = ``audio_pad_token_id`` (speech). Speech logits of ids past
    ``eosp`` are ``-inf`` (the checkpoint never samples them). Forward semantics are the
    parent's: speech embedding where the text id is ``modality_pad``, both tails on the
    shared output at every position, each with its own cache.
    """

    api_version = API_VERSION

    @dataclass
    class Params:
        trunk: Any = runtime()
        codebook_size: int | None = None
        """Checked against the checkpoint's codebook (``eosp_token_id``) when given."""

    def __init__(self, params: "MossSplitModel.Params") -> None:
        nn.Module.__init__(self)
        trunk = params.trunk
        moss = getattr(trunk, "moss", None)
        if moss is None or not hasattr(trunk, "speech_state"):
            raise ToolkitError("splitter 'moss_split' needs a 'moss_speech' trunk (a MOSS-Speech folder)")
        if params.codebook_size not in (None, moss.codebook_size):
            raise ToolkitError(f"codebook_size={params.codebook_size} differs from the "
                               f"checkpoint's codebook of {moss.codebook_size} (eosp_token_id)")
        self.params = params
        self.config = trunk.config
        self.split_at = k = moss.num_shared_layers
        self.rotary = trunk.rotary
        self.text_tokenizer = trunk.text_tokenizer
        self.tokens = SpecialTokens(moss.sosp, moss.modality_pad, moss.eosp, moss.audio_pad,
                                    moss.vocab_size, moss.codebook_size, speech_rows=moss.audio_vocab_size)
        self.embed_tokens = trunk.embed_tokens
        self.shared = nn.ModuleList(trunk.layers[:k])
        top = list(trunk.layers[k:])
        with torch.device("meta"):
            speech_layers = nn.ModuleList(copy.deepcopy(b).to("meta") for b in top)
            dim = trunk.embed_tokens.weight.shape[1]
            speech_head = nn.Linear(dim, moss.audio_vocab_size, bias=False)
            self.speech_embed = nn.Embedding(moss.audio_vocab_size, dim)
        self.branches = nn.ModuleDict({
            "text": Branch(nn.ModuleList(top), trunk.norm, trunk.lm_head),
            "speech": Branch(speech_layers, copy.deepcopy(trunk.norm).to("meta"), speech_head),
        })
        self.speech_adapter = nn.ModuleList()
        self.speech_lora = None
        self.speech_code_map = None  # its speech embedding is trained, never tied to codes
        self.speech_reader = None
        self._take_speech_state(trunk)

    def _take_speech_state(self, trunk: nn.Module) -> None:
        """Load the trunk's speech tensors (assigned, no copy) and point the trunk at the
        resulting parameters so its ``save_pretrained`` sees trained values."""
        state = trunk.speech_state
        wanted = {k for k in self.state_dict() if k.startswith(("speech_embed.", "branches.speech."))}
        missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
        if missing or extra:
            raise ToolkitError(f"{trunk.source}: speech side has {'no' if missing else 'an unexpected'}"
                               f" tensor '{(missing or extra)[0]}'")
        self.load_state_dict(state, strict=False, assign=True)
        own = dict(self.named_parameters())
        trunk.speech_state = {k: own[k] for k in state}

    def head(self, branch: str, hidden: Tensor) -> Tensor:
        """Logits of ``branch`` for normed ``hidden[..., D]``; speech ids past ``eosp`` are -inf."""
        logits = self.branches[branch].head(hidden)
        if branch == "speech":
            logits = logits.clone()
            logits[..., self.tokens.eosp + 1:] = float("-inf")
        return logits


__all__ = ["MossSplitModel"]
