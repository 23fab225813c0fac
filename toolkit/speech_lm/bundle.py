"""The speech-to-speech model as one object, and how it is assembled from plugin nodes.

:class:`SpeechLM` holds the split model with its trunk, the speech tokenizer and the decoder
(what :func:`toolkit.load` returns); :func:`build_trunk` and :func:`build_split` build the
first two from the ``{plugin, params}`` nodes a saved model records. Loading weights into them
is :mod:`toolkit.loading`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from torch import nn

from toolkit.registry import build_node


@dataclass
class SpeechLM:
    """A loaded speech-to-speech model: the split ``model`` with its ``trunk`` (whose modules
    it shares), the speech ``tokenizer`` and ``decoder`` (None when the run has none), and
    the plugin ``nodes`` they were built from. See :meth:`respond` for inference."""

    model: nn.Module
    trunk: nn.Module
    tokenizer: nn.Module | None
    decoder: nn.Module | None
    nodes: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def tokens(self):
        """The :class:`toolkit.speech_lm.layout.SpecialTokens` of the split model."""
        return self.model.tokens

    @property
    def text_tokenizer(self):
        return self.model.text_tokenizer

    def eval(self) -> "SpeechLM":
        for part in (self.model, self.tokenizer, self.decoder):
            if part is not None:
                part.eval()
        return self

    def respond(self, question: Any, mode: str = "s2s", **kwargs: Any):
        """Answer ``question`` (text, ``wav[T]`` at the tokenizer's rate, or an audio path) in
        ``mode``; see :func:`toolkit.speech_lm.inference.respond` for the options."""
        from toolkit.speech_lm.inference import respond

        return respond(self, question, mode, **kwargs)


def plain_params(params: Any) -> dict[str, Any]:
    """A plugin's Params dataclass -> the recipe-settable values (runtime fields dropped)."""
    if not is_dataclass(params):
        return {}
    out = {}
    for f in fields(params):
        if not f.metadata.get("toolkit_runtime"):
            out[f.name] = getattr(params, f.name)
    return out


def build_trunk(node: dict[str, Any], base: Path | None = None) -> nn.Module:
    """Build a trunk from ``{plugin, params}``; a relative ``checkpoint`` is taken from ``base``."""
    node = {"plugin": node["plugin"], "params": dict(node.get("params") or {})}
    ckpt = node["params"].get("checkpoint")
    if base is not None and isinstance(ckpt, str) and not Path(ckpt).is_absolute() \
            and (base / ckpt).exists():
        node["params"]["checkpoint"] = str(base / ckpt)
    return build_node("trunk", node, "trunk")


def build_split(trunk: nn.Module, node: dict[str, Any], codebook_size: int | None = None) -> nn.Module:
    """The splitter of ``node`` applied to ``trunk`` (``codebook_size`` fills a node without it)."""
    params = dict(node.get("params") or {})
    if "speech_vocab_size" in params:  # the splitter's name for it in exports before 2026-12
        params["codebook_size"] = params.pop("speech_vocab_size")
    if codebook_size is not None:
        params.setdefault("codebook_size", int(codebook_size))
    return build_node("splitter", {"plugin": node["plugin"], "params": params}, "splitter", trunk=trunk)


__all__ = ["SpeechLM", "plain_params", "build_trunk", "build_split"]
