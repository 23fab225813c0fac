"""Helpers of the speech-LM tests: a tiny random trunk, its split, a byte-level ChatML
tokenizer (the tiny trunk has none), and synthetic speech codes."""

from __future__ import annotations

import torch

import toolkit
from toolkit.contracts import TextTokenizer

TINY = {"vocab_size": 256, "hidden_size": 64, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 128}
N_CODES = 40


class ByteChat(TextTokenizer):
    """Bytes (clipped to 0..249) plus ChatML markers: <|im_start|>=250, <|im_end|>=251, pad=252."""

    START, END, PAD = 250, 251, 252

    def __init__(self) -> None:
        self.eos_ids = (self.END,)
        self.pad_id = self.PAD

    def encode(self, text: str) -> list[int]:
        return [min(b, 249) for b in text.encode("utf-8")]

    def decode(self, ids: list[int]) -> str:
        marks = {self.START: "<|im_start|>", self.END: "<|im_end|>", self.PAD: ""}
        return "".join(marks.get(i, chr(i)) if i >= 250 or i < 128 else "?" for i in ids)

    def chat(self, messages, add_generation_prompt: bool = True) -> list[int]:
        ids: list[int] = []
        for m in messages:
            ids += [self.START] + self.encode(f"{m['role']}\n{m['content']}") + [self.END] + self.encode("\n")
        if add_generation_prompt:
            ids += [self.START] + self.encode("assistant\n")
        return ids


def tiny_trunk(seed: int = 0, **overrides):
    return toolkit.build("trunk", "llama", config={**TINY, **overrides}, seed=seed)


def tiny_split(seed: int = 0, split_at: int = -2, init: str = "copy", **overrides):
    trunk = tiny_trunk(seed, **overrides)
    model = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=split_at,
                          codebook_size=N_CODES, init=init)
    model.text_tokenizer = ByteChat()
    return trunk, model


def synthetic_codes(n_utts: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Learnable fake speech: each utterance repeats a short random motif (so a model can
    drive the speech loss down quickly)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in range(n_utts):
        motif = torch.randint(0, N_CODES, (3,), generator=g)
        reps = int(torch.randint(3, 7, (1,), generator=g))
        out[f"u{i}"] = motif.repeat(reps)
    return out


def mixed_batch(model, seed=0):
    """Two grids: five text positions then six speech codes, and the reverse order."""
    from toolkit.speech_lm import speech_positions, text_positions

    g = torch.Generator().manual_seed(seed)
    t = model.tokens
    a = torch.cat([text_positions(torch.randint(0, 250, (5,), generator=g), t),
                   speech_positions(torch.randint(0, N_CODES, (6,), generator=g), t)])
    b = torch.cat([speech_positions(torch.randint(0, N_CODES, (6,), generator=g), t),
                   text_positions(torch.randint(0, 250, (5,), generator=g), t)])
    return torch.stack([a, b])


@torch.no_grad()
def assert_cached_equals_full(model, grid, prefix: int) -> None:
    """Feeding ``grid[:, :prefix]`` then one position at a time through KV caches gives the
    full pass's logits (both branches) at every position."""
    full = model(grid)
    caches = model.new_caches()
    first = model(grid[:, :prefix], caches=caches)
    torch.testing.assert_close(first.text_logits, full.text_logits[:, :prefix], rtol=1e-5, atol=1e-5)
    for t in range(prefix, grid.shape[1]):
        out = model(grid[:, t:t + 1], caches=caches)
        for branch in ("text", "speech"):
            torch.testing.assert_close(getattr(out, f"{branch}_logits")[:, 0],
                                       getattr(full, f"{branch}_logits")[:, t], rtol=1e-5, atol=1e-5)
