"""Text tokenizer of a trunk: a ``tokenizers`` BPE model plus the checkpoint's chat template."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer

from toolkit.contracts import TextTokenizer
from toolkit.errors import ToolkitError
from toolkit.io import atomic_write, read_json, write_json, write_text

if TYPE_CHECKING:
    from plugins.llama.config import LlamaConfig


class HFTextTokenizer(TextTokenizer):
    """Wraps a ``tokenizers.Tokenizer``; chat prompts are rendered with the model's Jinja template.

    ``eos_ids`` are the ids that end a turn, ``pad_id`` the id used for left padding,
    ``reserved_ids`` the special tokens the chat format never uses (free for a splitter).
    """

    def __init__(self, tokenizer: Tokenizer, chat_template: str | None = None,
                 bos_token: str | None = None, eos_token: str | None = None,
                 eos_ids: tuple[int, ...] = (), pad_id: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.bos_token, self.eos_token = bos_token, eos_token
        ids = list(eos_ids)
        if eos_token is not None and tokenizer.token_to_id(eos_token) is not None:
            ids.append(tokenizer.token_to_id(eos_token))
        self.eos_ids = tuple(dict.fromkeys(ids))
        self.pad_id = pad_id if pad_id is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.reserved_ids = self._unused_special_ids()

    def _unused_special_ids(self) -> tuple[int, ...]:
        used = {self.bos_token, self.eos_token}
        out = []
        for idx, tok in sorted(self.tokenizer.get_added_tokens_decoder().items()):
            if not tok.special or tok.content in used or idx in self.eos_ids or idx == self.pad_id:
                continue
            if self.chat_template and tok.content in self.chat_template:
                continue
            if tok.content in ("<unk>", "<|endoftext|>", "<s>", "</s>", "<pad>"):
                continue
            out.append(idx)
        return tuple(out)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Text -> ids (no BOS added; special tokens written in the text stay whole)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special)

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The chat template applied to ``messages`` (``{"role", "content"}`` dicts), as text."""
        if not self.chat_template:
            raise ToolkitError("this trunk's tokenizer has no chat template; use a plain prompt")
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ToolkitError(f"chat template: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals.update(raise_exception=raise_exception,
                           strftime_now=lambda fmt: datetime.now().strftime(fmt))
        try:
            return env.from_string(self.chat_template).render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token or "", eos_token=self.eos_token or "")
        except TemplateError as err:
            raise ToolkitError(f"chat template failed: {err}") from None

    def chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.render_chat(messages, add_generation_prompt))

    # ------------------------------------------------------------ files
    @classmethod
    def from_folder(cls, folder: Path, arch: "LlamaConfig") -> "HFTextTokenizer | None":
        """From ``tokenizer.json`` (+ ``tokenizer_config.json`` / ``chat_template.jinja``), or
        None when the folder has no tokenizer."""
        path = folder / "tokenizer.json"
        if not path.is_file():
            return None
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            raise ToolkitError(f"{path}: not a readable tokenizer ({err})") from None
        cfg: dict[str, Any] = {}
        if (folder / "tokenizer_config.json").is_file():
            cfg = read_json(folder / "tokenizer_config.json")
        template = cfg.get("chat_template")
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        pad = tok.token_to_id(_text(cfg.get("pad_token")) or "") if cfg.get("pad_token") else None
        return cls(tok, template if isinstance(template, str) else None, _text(cfg.get("bos_token")),
                   _text(cfg.get("eos_token")), _ids(arch.eos_token_id),
                   pad if pad is not None else arch.pad_token_id)

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (with the chat template)."""
        data = self.tokenizer.to_str()
        atomic_write(folder / "tokenizer.json", lambda p: p.write_text(data, encoding="utf-8"))
        pad = self.tokenizer.id_to_token(self.pad_id)
        write_json(folder / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": self.bos_token,
            "eos_token": self.eos_token, "pad_token": pad, "chat_template": self.chat_template,
            "add_bos_token": False, "clean_up_tokenization_spaces": False})
        if self.chat_template:
            write_text(folder / "chat_template.jinja", self.chat_template)


def _text(token: Any) -> str | None:
    if isinstance(token, dict):
        return token.get("content")
    return token if isinstance(token, str) else None


def _ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (int(value),)


__all__ = ["HFTextTokenizer"]
