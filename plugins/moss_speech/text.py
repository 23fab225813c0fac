"""MOSS-Speech's text side: the chat format its processor builds by hand, and the official
system prompts of the two output modalities."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import ToolkitError

from plugins.llama.config import LlamaConfig
from plugins.llama.tokenizer import HFTextTokenizer

SYSTEM_PROMPTS = {
    "speech": "You are a helpful voice assistant. Answer the user's questions with spoken responses.",
    "text": "You are a helpful assistant. Answer the user's questions with text.",
}
"""The reference interface's system prompts, by output modality."""


class MossTextTokenizer(HFTextTokenizer):
    """The checkpoint's ``tokenizer.json`` with MOSS-Speech's hand-built chat format:
    ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per turn, generation prompt
    ``<|im_start|>assistant\\n`` (``sosp`` follows it for speech output; the toolkit appends
    it). The repository's Jinja template is not used (the reference processor does not).
    Turn ends: ``<|im_end|>`` and ``<|endoftext|>``."""

    system_prompts = SYSTEM_PROMPTS

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        parts = []
        for m in messages:
            if not isinstance(m.get("content"), str):
                raise ToolkitError(f"a {m.get('role')} message needs text content for the chat frame")
            parts.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    @classmethod
    def load(cls, folder: Path, arch: LlamaConfig) -> "MossTextTokenizer | None":
        """From the folder's ``tokenizer.json`` (None when it has none)."""
        tok = cls.from_folder(folder, arch)
        if tok is None:
            return None
        for marker in ("<|im_start|>", "<|im_end|>"):
            if tok.tokenizer.token_to_id(marker) is None:
                raise ToolkitError(f"{folder / 'tokenizer.json'}: no '{marker}' token (not a Qwen-family tokenizer)")
        end = tok.tokenizer.token_to_id("<|endoftext|>")
        tok.eos_ids = tuple(dict.fromkeys([*tok.eos_ids, tok.tokenizer.token_to_id("<|im_end|>"),
                                           *([end] if end is not None else [])]))
        tok.reserved_ids = ()
        return tok


__all__ = ["MossTextTokenizer", "SYSTEM_PROMPTS"]
