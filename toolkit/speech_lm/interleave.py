"""Word-interleaved text-to-speech: each word's text, then the speech that says it.

Plain TTS puts the whole text first, so for every code the speech branch must find where in
the text it is: an alignment learned from scratch, which a small model on a small corpus does
not learn (it memorises its training sentences instead). Interleaved, the word being said is
always the text just before the open speech segment, so reading is local::

    text  : The  sosp  pad pad  pad   " capital"  sosp  pad pad pad  pad   ...
    speech: pad  pad   c1  c2   eosp  pad         pad   c3  c4  c5   eosp  ...

Word spans come from the speech tokenizer (its optional ``word_spans(codes, text)``, e.g.
whisper_vq's phoneme forced alignment). Reading aloud in this layout gives each word's text
and ``sosp`` and lets the model say codes until ``eosp``.

A branch trained on whole sentences this way still memorises sentences: it says a name it
learnt in one sentence wrongly in another. Trained and read on each word alone
(:func:`toolkit.speech_lm.sequences.words_alone`, ``read_interleaved(alone=True)``), it has
no sentence to memorise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from toolkit.contracts import TextTokenizer
from toolkit.speech_lm.layout import SpecialTokens, speech_positions, text_positions

WordSpan = tuple[str, int, int]
"""``(word, start, end)``: the word is said in codes ``start .. end - 1``."""


def word_ids(tok: TextTokenizer, word: str, first: bool) -> list[int]:
    """Text ids of one word of a sentence (a space before every word but the first)."""
    return tok.encode(word if first else " " + word)


def interleaved_positions(tok: TextTokenizer, tokens: SpecialTokens, spans: Sequence[WordSpan],
                          codes: Tensor) -> Tensor:
    """Word spans of ``codes[n]`` -> grid ``[L, 2]``: each word's text ids, then ``sosp``, the
    codes of its span and ``eosp``."""
    pieces = []
    for i, (word, start, end) in enumerate(spans):
        pieces += [text_positions(word_ids(tok, word, i == 0), tokens), speech_positions(codes[start:end], tokens)]
    return torch.cat(pieces)


@torch.no_grad()
def read_interleaved(model: nn.Module, texts: list[str], max_codes_per_word: int = 30,
                     batch_size: int = 16, alone: bool = False) -> list[Tensor]:
    """Each text read aloud word by word (greedy): the word's text and ``sosp`` are given, the
    model says codes until ``eosp`` (or ``max_codes_per_word``) -> every code said, ``[n]``.
    ``alone``: each word is read with nothing before it (as
    :func:`toolkit.speech_lm.sequences.words_alone` trains), so how a word is said cannot
    depend on the sentence around it."""
    from toolkit.speech_lm.generate import GenerationConfig, generate

    tok, tokens = model.text_tokenizer, model.tokens
    config = GenerationConfig(max_new_tokens=max_codes_per_word, stop_after_speech=True)
    opener = torch.tensor([[tokens.sosp, tokens.speech_pad]])
    out = []
    for start in range(0, len(texts), batch_size):
        words = [t.split() for t in texts[start:start + batch_size]]
        grids = [torch.zeros(0, 2, dtype=torch.long) for _ in words]
        said: list[list[Tensor]] = [[] for _ in words]
        for k in range(max(map(len, words), default=0)):
            live = [i for i, w in enumerate(words) if k < len(w)]
            prompts = [torch.cat([grids[i], text_positions(word_ids(tok, words[i][k], k == 0 or alone), tokens),
                                  opener]) for i in live]
            for i, prompt, g in zip(live, prompts, generate(model, prompts, config)):
                codes = g.speech[0] if g.speech else torch.zeros(0, dtype=torch.long)
                said[i].append(codes)
                if not alone:
                    grids[i] = torch.cat([prompt, speech_positions(codes, tokens, open_=False)])
        out += [torch.cat(s) if s else torch.zeros(0, dtype=torch.long) for s in said]
    return out


__all__ = ["WordSpan", "word_ids", "interleaved_positions", "read_interleaved"]
