"""The ``moss_speech`` trunk: the text path of a released MOSS-Speech checkpoint as a Qwen3
trunk (shared layers, then the text block; text norm; untied text head). The speech side
(audio embedding, audio block, audio norm, audio head) rides along in :attr:`speech_state`
for the ``moss_split`` splitter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from toolkit.registry import API_VERSION
from toolkit.contracts import TrunkConfig
from toolkit.errors import ToolkitError
from toolkit.formats.moss_layout import MossConfig, read_folder, split_name, write_folder
from toolkit.nn import use_fast_linears

from plugins.llama.config import parse_config
from plugins.llama.model import DTYPES, LlamaTrunk
from plugins.moss_speech.text import MossTextTokenizer

TEXT_TOP = {"embed_tokens.weight": "embed_tokens.weight", "branches.text.norm.weight": "norm.weight",
            "branches.text.head.weight": "lm_head.weight"}


def trunk_name(split: str, n_shared: int) -> str | None:
    """A split-model name -> the trunk's name (None for speech-side tensors)."""
    if split in TEXT_TOP:
        return TEXT_TOP[split]
    if split.startswith("shared."):
        return "layers." + split.removeprefix("shared.")
    if split.startswith("branches.text.layers."):
        index, _, rest = split.removeprefix("branches.text.layers.").partition(".")
        return f"layers.{n_shared + int(index)}.{rest}"
    return None


class MossSpeechTrunk(LlamaTrunk):
    """A MOSS-Speech folder (``config.json`` with ``model_type: moss_speech``, sharded
    safetensors, ``tokenizer.json``) read as a Qwen3 trunk of ``num_shared_layers +
    num_modality_layers`` layers; ``moss`` is its :class:`~toolkit.formats.moss_layout.MossConfig`
    and ``config.reserved_token_ids`` is ``(sosp, modality_pad)``. Nothing from the folder
    is executed; weights are read from safetensors only."""

    api_version = API_VERSION

    @dataclass
    class Params:
        checkpoint: str | None = None
        """A MOSS-Speech folder (the published layout)."""
        dtype: Literal["fp32", "bf16"] = "fp32"
        fast_linears: bool = True
        """Packed weight copies for fast no-grad CPU inference (see ``llama``)."""

    def __init__(self, params: "MossSpeechTrunk.Params | None" = None) -> None:
        torch.nn.Module.__init__(self)
        params = params or self.Params()
        if not params.checkpoint:
            raise ToolkitError("trunk 'moss_speech' needs checkpoint: a MOSS-Speech folder")
        folder = Path(params.checkpoint)
        moss, tensors, self.weight_map = read_folder(folder)
        self.moss: MossConfig = moss
        self.folder = folder
        self._build(parse_config(moss.qwen3_config(), str(folder / "config.json")), meta=True)
        text, speech = {}, {}
        for name, t in tensors.items():
            ours = split_name(name)
            target = trunk_name(ours, moss.num_shared_layers)
            (text if target else speech)[target or ours] = t
        self.source = str(folder)
        self.load_weights(text, self.source)
        dtype = DTYPES[params.dtype]
        self.speech_state: dict[str, Tensor] = {k: v.to(dtype) for k, v in speech.items()}
        """Speech-side tensors under split-model names; the splitter replaces them by its own
        parameters, so :meth:`save_pretrained` writes the current weights."""
        self.text_tokenizer = MossTextTokenizer.load(folder, self.arch)
        self.to(dtype)
        if params.fast_linears:
            use_fast_linears(self)
        self.config = self._trunk_config()

    def _trunk_config(self) -> TrunkConfig:
        a = self.arch
        return TrunkConfig(a.vocab_size, a.hidden_size, a.num_layers, a.num_heads, a.num_kv_heads,
                           a.head_dim, a.max_position, "moss_speech",
                           (self.moss.sosp, self.moss.modality_pad))

    def published_tensors(self) -> dict[str, Tensor]:
        """Every tensor under its published name, cast to the checkpoint's dtype."""
        out = {}
        state = self.state_dict()
        n_shared = self.moss.num_shared_layers
        for name in self.weight_map:
            ours = split_name(name)
            t = self.speech_state[ours] if ours in self.speech_state else state[trunk_name(ours, n_shared)]
            out[name] = t.detach().to(self.moss.dtype)
        return out

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the published layout (same shards as the source folder) plus the source's
        tokenizer and code files; see :func:`toolkit.formats.moss_speech.copy_side_files`."""
        from toolkit.formats.moss_speech import copy_side_files

        directory = Path(directory)
        write_folder(directory, self.moss.raw, self.published_tensors(), self.weight_map)
        copy_side_files(self.folder, directory)
        return directory


__all__ = ["MossSpeechTrunk", "trunk_name"]
