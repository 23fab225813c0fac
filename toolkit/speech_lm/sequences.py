"""Training and prompt sequences: conversations and pre-training pieces -> dual-channel grids.

An *example* is a dict of ``input_ids[L,2]`` long, ``labels[L]`` long and
``target_modality[L]`` long (``TEXT``, ``SPEECH`` or ``IGNORE``): position ``t`` is scored on
the live token of ``t + 1`` with that token's modality head.

Chat turns are framed by the trunk's own chat template: for every turn we render the template
with an empty and a probe content, which gives the turn's header (``<|im_start|>user\\n``...)
and footer (``<|im_end|>\\n``...) ids; the content (text ids, or a speech segment) goes between.
For speech output the assistant header is followed by ``sosp`` (part of the prompt, not a
target), so the four modes S->S, S->T, T->S, T->T are chosen per turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from toolkit.contracts import TextTokenizer
from toolkit.errors import ToolkitError
from toolkit.speech_lm.layout import (SpecialTokens, live_modality, next_token_targets,
                                      speech_positions, text_positions)

MODES = ("s2s", "s2t", "t2s", "t2t")


@dataclass
class Turn:
    """One chat turn: ``role`` (system, user, assistant) with ``text`` or speech ``codes``."""

    role: str
    text: str | None = None
    codes: Sequence[int] | Tensor | None = None

    @property
    def is_speech(self) -> bool:
        return self.codes is not None


def _frame(tok: TextTokenizer, history: list[dict[str, str]], role: str) -> tuple[list[int], list[int]]:
    """Header and footer ids of a ``role`` turn after ``history`` in ``tok``'s chat template."""
    before = tok.chat(history, add_generation_prompt=False) if history else []
    empty = tok.chat(history + [{"role": role, "content": ""}], add_generation_prompt=False)
    probe = tok.chat(history + [{"role": role, "content": "a"}], add_generation_prompt=False)
    if empty[:len(before)] != before or probe[:len(before)] != before:
        raise ToolkitError("the trunk's chat template is not prefix-stable (a turn changes the "
                           "rendering of earlier turns); speech turns cannot be framed")
    seg_empty, seg_probe = empty[len(before):], probe[len(before):]
    n = 0
    while n < min(len(seg_empty), len(seg_probe)) and seg_empty[n] == seg_probe[n]:
        n += 1
    return seg_empty[:n], seg_empty[n:]


def build_conversation(turns: Sequence[Turn], tok: TextTokenizer, tokens: SpecialTokens,
                       train_roles: tuple[str, ...] = ("assistant",),
                       generation_prompt: Literal["text", "speech"] | None = None) -> dict[str, Tensor]:
    """A conversation -> example (``input_ids``, ``labels``, ``target_modality``).

    Targets are the content and footer of turns whose role is in ``train_roles``; the ``sosp``
    opening a speech turn is not a target. With ``generation_prompt`` the grid ends with the
    assistant header (and ``sosp`` for ``"speech"``), ready for :func:`toolkit.speech_lm.generate`.
    """
    pieces: list[Tensor] = []
    masks: list[Tensor] = []
    history: list[dict[str, str]] = []
    for turn in turns:
        if (turn.text is None) == (turn.codes is None):
            raise ToolkitError(f"a {turn.role} turn needs exactly one of text or codes")
        header, footer = _frame(tok, history, turn.role)
        if turn.is_speech:
            content = speech_positions(turn.codes, tokens)
            content_mask = torch.ones(len(content), dtype=torch.bool)
            content_mask[0] = False  # sosp belongs to the prompt: it picks the output modality
        else:
            content = text_positions(tok.encode(turn.text), tokens)
            content_mask = torch.ones(len(content), dtype=torch.bool)
        trained = turn.role in train_roles
        pieces += [text_positions(header, tokens), content, text_positions(footer, tokens)]
        masks += [torch.zeros(len(header), dtype=torch.bool), content_mask & trained,
                  torch.full((len(footer),), trained)]
        history.append({"role": turn.role, "content": "" if turn.is_speech else turn.text})
    if generation_prompt is not None:
        full = tok.chat(history, add_generation_prompt=True)
        plain = tok.chat(history, add_generation_prompt=False) if history else []
        header = full[len(plain):]
        if generation_prompt == "speech":
            header = header + [tokens.sosp]
        pieces.append(text_positions(header, tokens))
        masks.append(torch.zeros(len(header), dtype=torch.bool))
    ids = torch.cat(pieces)
    labels, target = next_token_targets(ids, torch.cat(masks), tokens)
    return {"input_ids": ids, "labels": labels, "target_modality": target}


def dialogue_turns(turns: Sequence[dict], mode: str, codes_of) -> list[Turn]:
    """Corpus dialogue turns (``{role, text, utt}``) -> :class:`Turn` s for ``mode``
    (``s2t``: user turns spoken, assistant written; ...). ``codes_of(utt_id) -> codes``."""
    if mode not in MODES:
        raise ToolkitError(f"unknown dialogue mode '{mode}'; modes: {', '.join(MODES)}")
    spoken = {"user": mode[0] == "s", "assistant": mode[2] == "s"}
    out = []
    for turn in turns:
        role = turn["role"]
        if spoken.get(role, False):
            if not turn.get("utt"):
                raise ToolkitError(f"a {mode} dialogue has a {role} turn without an utterance")
            out.append(Turn(role, codes=codes_of(turn["utt"])))
        else:
            out.append(Turn(role, text=turn["text"]))
    return out


def pretraining_example(kind: str, tok: TextTokenizer, tokens: SpecialTokens, codes: Tensor | None = None,
                        text: str | None = None,
                        text_targets: Literal["all", "after_speech", "none"] = "all",
                        spans: Sequence[tuple[str, int, int]] | None = None) -> dict[str, Tensor]:
    """One pre-training sequence of ``kind``:

    - ``continuation``: a speech segment (codes and ``eosp`` are targets);
    - ``asr``: speech segment then the transcript and an end-of-text id;
    - ``tts``: the text then the speech segment;
    - ``tts_words``: word-interleaved TTS, each word's text then its speech, from the word
      ``spans`` of ``codes`` (:mod:`toolkit.speech_lm.interleave`);
    - ``text``: text and an end-of-text id.

    ``asr`` and ``tts`` examples also carry ``transcript[n]``, the text ids the speech says
    (for :mod:`toolkit.speech_lm.hearing_ctc`).

    ``text_targets``: score every text target, only text targets after some speech (stage I,
    where a text target after text alone trains nothing), or none.
    """
    eos = list(tok.eos_ids[:1])
    text_ids = tok.encode(text) if kind in ("asr", "tts", "text") else []
    if kind == "continuation":
        ids = speech_positions(codes, tokens)
    elif kind == "asr":
        ids = torch.cat([speech_positions(codes, tokens), text_positions(text_ids + eos, tokens)])
    elif kind == "tts":
        ids = torch.cat([text_positions(text_ids, tokens), speech_positions(codes, tokens)])
    elif kind == "tts_words":
        if not spans:
            raise ToolkitError("a tts_words example needs the word spans of its codes")
        from toolkit.speech_lm.interleave import interleaved_positions

        ids = interleaved_positions(tok, tokens, spans, torch.as_tensor(codes))
    elif kind == "text":
        ids = text_positions(text_ids + eos, tokens)
    else:
        raise ToolkitError(f"unknown pre-training kind '{kind}'; kinds: continuation, asr, tts, tts_words, text")
    mask = torch.ones(len(ids), dtype=torch.bool)
    is_text = live_modality(ids, tokens) == 0
    if text_targets == "none":
        mask &= ~is_text
    elif text_targets == "after_speech":
        seen_speech = torch.cumsum((~is_text).long(), 0) > 0
        mask &= ~is_text | seen_speech
    labels, target = next_token_targets(ids, mask, tokens)
    example = {"input_ids": ids, "labels": labels, "target_modality": target}
    if kind in ("asr", "tts") and text_ids:
        example["transcript"] = torch.as_tensor(text_ids, dtype=torch.long)  # what the speech says
    return example


def words_alone(tok: TextTokenizer, tokens: SpecialTokens, spans: Sequence[tuple[str, int, int]],
                codes: Tensor) -> list[dict[str, Tensor]]:
    """One ``tts_words`` example per word of ``spans``, as if said alone: the word's text,
    then the codes of its span (a word said in no code is left out)."""
    return [pretraining_example("tts_words", tok, tokens, codes=codes[start:end], text=word,
                                spans=[(word, 0, end - start)]) for word, start, end in spans if end > start]


__all__ = ["Turn", "MODES", "build_conversation", "dialogue_turns", "pretraining_example", "words_alone"]
