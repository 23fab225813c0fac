"""Text-ability retention: a model's own text-QA accuracy and perplexity on held-out text.

The same code scores the original trunk and each LM stage's split model (through its text
path only: shared blocks, text branch, text head), so "after stage I equals before" is a
like-for-like comparison. The split model's special text ids (``sosp``, ``modality_pad`` and
appended rows) are banned in both, so neither can wander into speech.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from toolkit.evaluation.qa import QAItem, is_correct


class TextView(nn.Module):
    """A trunk or a split model seen as a text LM with the trunk calling convention
    ``forward(ids[B,L], attention_mask, cache, last_only) -> logits[B,L,V]`` used by
    :func:`toolkit.textgen.generate`; ``banned`` ids get ``-inf`` logits."""

    def __init__(self, model: nn.Module, banned: Sequence[int] = (), vocab_size: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.is_split = hasattr(model, "tokens") and hasattr(model, "new_caches")
        self.banned = sorted(set(int(b) for b in banned))
        self.vocab_size = vocab_size

    def new_cache(self):
        return self.model.new_caches() if self.is_split else self.model.new_cache()

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, cache=None,
                last_only: bool = False) -> Tensor:
        if self.is_split:
            speech = torch.full_like(input_ids, self.model.tokens.speech_pad)
            grid = torch.stack([input_ids, speech], dim=-1)
            logits = self.model(grid, ("text",), attention_mask, cache).text_logits
            logits = logits[:, -1:] if last_only else logits
        else:
            logits = self.model(input_ids, attention_mask, cache=cache, last_only=last_only)
        if self.vocab_size is not None:
            logits = logits[..., : self.vocab_size]
        if self.banned:
            logits = logits.clone()
            logits[..., [b for b in self.banned if b < logits.shape[-1]]] = float("-inf")
        return logits


def text_view(model: nn.Module, tokens) -> TextView:
    """``model`` as a text LM over the trunk's own vocabulary (``tokens``: the split model's
    special ids, banned in the trunk and the split model alike)."""
    appended = list(tokens.appended_text_rows)
    vocab = tokens.text_vocab_size - len(appended)
    return TextView(model, [tokens.sosp, tokens.modality_pad], vocab)


@torch.no_grad()
def text_qa_accuracy(view: TextView, tok, items: list[QAItem], max_new_tokens: int = 48,
                     batch_size: int = 8) -> tuple[float | None, list[dict]]:
    """Greedy chat answers of ``view`` to ``items`` -> (fraction containing the key, records)."""
    from toolkit.textgen import generate

    if not items:
        return None, []
    records = []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        prompts = [tok.chat([{"role": "user", "content": it.question}]) for it in batch]
        outs = generate(view, prompts, max_new_tokens, stop_ids=tok.eos_ids, pad_id=tok.pad_id)
        for item, ids in zip(batch, outs):
            text = tok.decode([i for i in ids if i not in tok.eos_ids])
            records.append({"id": item.id, "split": item.split, "output": text,
                            "correct": bool(is_correct(text, item))})
    return sum(r["correct"] for r in records) / len(records), records


@torch.no_grad()
def perplexity(view: TextView, tok, texts: list[str], max_len: int = 256) -> float | None:
    """exp(mean next-token NLL) over ``texts`` (each cut to ``max_len`` tokens)."""
    total, count = 0.0, 0
    for text in texts:
        ids = tok.encode(text)[:max_len]
        if len(ids) < 2:
            continue
        x = torch.tensor([ids])
        logits = view(x).float()
        nll = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum")
        total += float(nll)
        count += len(ids) - 1
    return math.exp(total / count) if count else None


def retention_entry(view: TextView, tok, items: dict[str, list[QAItem]], texts: list[str],
                    max_new_tokens: int) -> dict:
    """``{"accuracy": {split: fraction}, "perplexity": float}`` of one model."""
    acc = {split: text_qa_accuracy(view, tok, its, max_new_tokens)[0] for split, its in items.items()}
    return {"accuracy": acc, "perplexity": perplexity(view, tok, texts)}


__all__ = ["TextView", "text_view", "text_qa_accuracy", "perplexity", "retention_entry"]
