"""Spoken answers read without the decoder, and the most the decoder lets a spoken answer score.

S->S and T->S are scored by voicing the answer's codes with the decoder and asking the ASR
judge, so a decoder that loses names caps them whatever the LM says. Two measures tell the two
apart:

- :class:`AnswerReader` reads each speech answer's codes with the speech tokenizer's phoneme
  head (:mod:`toolkit.evaluation.phonemes`): ``key_said``, the key's phonemes appear unbroken;
  ``key_closest``, of every answer key of the evaluation, the key is the one closest to a
  stretch of what the codes say (keys heard in the question itself are left out, so repeating
  the question's name is no evidence of the answer).
- :func:`answer_ceiling` scores the right answer itself: its text spoken in the question voice,
  encoded by the tokenizer, then read by the phoneme head and voiced by the decoder for the
  judge. That is what a model whose codes are exactly the right answer's would score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from toolkit.evaluation.qa import QUESTION_VOICE, QAItem, is_correct


class AnswerReader:
    """``reader(codes, item)`` -> ``{phonemes, key_said, key_closest}`` for one speech answer
    ``codes[n]``; built only where the tokenizer has a phoneme head (see :meth:`of`)."""

    def __init__(self, tokenizer, head, keys: list[str]) -> None:
        self.head, self.vectors = head, tokenizer.code_vectors()
        self.spoken = {k: head.reference(k).replace(" ", "") for k in sorted(set(keys))}

    @classmethod
    def of(cls, tokenizer, items: list[QAItem]) -> AnswerReader | None:
        """A reader against every key of ``items``, or None without a phoneme head."""
        from toolkit.evaluation.phonemes import phoneme_head

        head = phoneme_head(tokenizer)
        return cls(tokenizer, head, [it.key for it in items]) if head is not None and items else None

    def __call__(self, codes: Tensor, item: QAItem) -> dict[str, Any]:
        from toolkit.evaluation.phonemes import closest_name

        said = self.head.greedy(self.vectors[codes]) if len(codes) else ""
        heard, key = said.replace(" ", ""), self._spoken(item.key)
        question = _words(item.question)
        among = {k: p for k, p in self.spoken.items() if not _words(k) <= question} | {item.key: key}
        return {"phonemes": said, "key_said": bool(heard) and key in heard,
                "key_closest": bool(heard) and closest_name(among, heard) == item.key}

    def _spoken(self, key: str) -> str:
        return self.spoken.get(key) or self.head.reference(key).replace(" ", "")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def phoneme_accuracy(records: list[dict], splits: tuple[str, ...], modes: tuple[str, ...]) -> dict:
    """``{split: {mode: {key_said, key_closest, n}}}`` over the speech-answer records that were
    read (see :class:`AnswerReader`); modes without such records are left out."""
    out: dict[str, dict] = {}
    for split in splits:
        out[split] = {}
        for mode in modes:
            read = [r for r in records if r["split"] == split and r["mode"] == mode and "key_closest" in r]
            if read:
                out[split][mode] = {"key_said": sum(r["key_said"] for r in read) / len(read),
                                    "key_closest": sum(r["key_closest"] for r in read) / len(read),
                                    "n": len(read)}
    return out


@torch.no_grad()
def answer_ceiling(lm, judge, items: dict[str, list[QAItem]], reader: AnswerReader | None,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``{split: {judge, key_said, key_closest, n}}`` for each item's right answer (its
    ``answer`` sentence, else its key) spoken in the question voice -> tokenizer codes: ``judge``
    is the share the judge scores right when the decoder voices those codes; the ``key_*`` shares
    are :class:`AnswerReader`'s on them (absent without a phoneme head)."""
    from toolkit.data.synth import Voice, synthesize
    from toolkit.evaluation.ladder import encode_wav, voiced_transcripts

    if lm.tokenizer is None or lm.decoder is None:
        return {"status": "not run", "reason": "the model has no speech tokenizer or decoder"}
    rate, out = lm.tokenizer.sample_rate, {}
    for split, split_items in items.items():
        rows = []
        for item in split_items:
            codes = encode_wav(lm.tokenizer, synthesize(item.answer or item.key, Voice(*QUESTION_VOICE), rate))
            heard = voiced_transcripts(lm, judge, [codes])[0]
            rows.append({"judge": is_correct(heard, item)} | (reader(codes, item) if reader else {}))
            if progress is not None:
                progress(1)
        if rows:
            out[split] = {k: sum(r[k] for r in rows) / len(rows) for k in ("judge", "key_said", "key_closest")
                          if k in rows[0]} | {"n": len(rows)}
    return out


__all__ = ["AnswerReader", "phoneme_accuracy", "answer_ceiling"]
