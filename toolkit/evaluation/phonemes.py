"""Decoder-free reading of speech codes: what the codes say, read by the speech tokenizer's own
phoneme CTC head (a whisper_vq tokenizer trained with ``ctc_labels: phonemes``).

The ladder's speaking rung voices the LM's codes with the decoder and asks the ASR judge, so a
weak decoder hides what the LM said (moss_full's decoder keeps few names through resynthesis).
Reading the codes with the phoneme head instead measures the LM alone: phoneme error rate
against espeak-ng's phonemes of the text, and whether the entity name is said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


def phoneme_distance(name: str, heard: str) -> int:
    """Edit distance of ``name`` against the best-matching stretch of ``heard`` (both phoneme
    strings): how far the codes are from saying the name somewhere in the utterance."""
    prev = [0] * (len(heard) + 1)  # a match may start anywhere in heard
    for i, a in enumerate(name, 1):
        cur = [i] + [0] * len(heard)
        for j, b in enumerate(heard, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b))
        prev = cur
    return min(prev)


def closest_name(spoken: dict[str, str], heard: str) -> str | None:
    """The name of ``spoken`` (name -> its phoneme string) whose phonemes are closest to a
    stretch of ``heard``, by :func:`phoneme_distance` per phoneme of the name; None when
    several share the smallest distance (a tie would otherwise be settled by dict order)."""
    cost = {n: phoneme_distance(p, heard) / max(1, len(p)) for n, p in spoken.items()}
    best = min(cost.values(), default=None)
    tied = [n for n, c in cost.items() if c == best]
    return tied[0] if len(tied) == 1 else None


def phoneme_head(tokenizer: nn.Module | None):
    """The tokenizer's phoneme CTC head (``.greedy(vectors)``, ``.reference(text)``), or None
    when it has none (another tokenizer, or a head trained on letters)."""
    head = getattr(tokenizer, "ctc", None)
    has_vectors = hasattr(tokenizer, "code_vectors")
    return head if has_vectors and getattr(head, "labels", None) == "phonemes" else None


@torch.no_grad()
def code_phonemes(tokenizer: nn.Module, utts: list[dict], codes: list[Tensor],
                  names: list[str]) -> dict[str, Any] | None:
    """What ``codes[i][n_i]`` say, read by the tokenizer's phoneme head (None without one):
    ``per``, the phoneme error rate against the phonemes of ``utts[i]["text"]``;
    ``entity_exact``, the share of utterances whose name's phonemes appear unbroken; and
    ``entity_closest``, the share whose name is the closest of ``names`` (e.g. every name of
    the corpus) by :func:`phoneme_distance` per phoneme: whether the codes tell the name apart
    from the others, which is what a model that learned the names must do."""
    from toolkit.evaluation.metrics import wer

    head = phoneme_head(tokenizer)
    if head is None or not utts:
        return None
    vectors = tokenizer.code_vectors()
    spoken = {n: head.reference(n).replace(" ", "") for n in {*names, *(u["entity"] for u in utts)}}
    refs, hyps, hits, found = [], [], 0, 0
    for u, c in zip(utts, codes):
        hyp = head.greedy(vectors[c]) if len(c) else ""
        ref = head.reference(u["text"])
        refs.append(" ".join(ref.replace(" ", "_")))  # one "word" per phoneme symbol
        hyps.append(" ".join(hyp.replace(" ", "_")))
        heard = hyp.replace(" ", "")
        hits += spoken[u["entity"]] in heard
        found += closest_name(spoken, heard) == u["entity"]
    return {"per": wer(refs, hyps, normalize=False), "entity_exact": hits / len(utts),
            "entity_closest": found / len(utts), "names": len(spoken), "n": len(utts),
            "samples": [[r.replace(" ", "").replace("_", " "), h.replace(" ", "").replace("_", " ")]
                        for r, h in zip(refs[:4], hyps[:4])]}


def corpus_names(corpus: Path) -> list[str]:
    """Every name some utterance of ``corpus`` carries (all splits), sorted."""
    from toolkit.io import read_jsonl

    path = corpus / "utterances.jsonl"
    return sorted({u["entity"] for u in read_jsonl(path) if u.get("entity")}) if path.is_file() else []


__all__ = ["phoneme_distance", "closest_name", "phoneme_head", "code_phonemes", "corpus_names"]
