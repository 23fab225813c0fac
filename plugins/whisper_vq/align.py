"""Where each word of a transcript lies in an utterance's codes, by the tokenizer's own ears.

The phoneme CTC head reads every code on its own (see :mod:`plugins.whisper_vq.ctc`), so its
posteriors over the codes of an utterance can be force-aligned to the transcript's espeak-ng
phonemes. A word boundary falls midway between one word's last phoneme and the next word's
first (both aligned at 50 Hz, ``pool`` sub-frames per code), rounded to the nearest code.
"""

from __future__ import annotations

import torch
from torch import Tensor

from toolkit.speech_lm.interleave import WordSpan


@torch.no_grad()
def word_spans(head, vectors: Tensor, codes: Tensor, text: str) -> list[WordSpan] | None:
    """``codes[n]`` of an utterance saying ``text`` -> one span per whitespace word of ``text``,
    covering ``0 .. n`` in order (silence goes to the neighbouring word), or None where the
    words cannot be placed: espeak-ng splits the text into another number of words, or the
    codes are too short for its phonemes.

    ``head``: a :class:`plugins.whisper_vq.ctc.LocalCTCHead` with phoneme labels;
    ``vectors[codebook_size, D]``: what each code stands for (the tokenizer's code vectors)."""
    from torchaudio.functional import forced_align, merge_tokens

    words, spoken = text.split(), head.reference(text)
    if len(words) < 2 or len(spoken.split(" ")) != len(words):
        return None
    labels = torch.tensor([[head.alphabet.index(ch) + 1 for ch in spoken]], dtype=torch.int32)
    log_probs = head(vectors[codes.long()][None].float()).float()
    repeats = int((labels[0, 1:] == labels[0, :-1]).sum())
    if log_probs.shape[1] < labels.shape[1] + repeats:  # CTC needs a blank between repeats
        return None
    path, scores = forced_align(log_probs, labels, blank=0)
    spans = merge_tokens(path[0], scores[0].exp())
    gap, n = head.alphabet.index(" ") + 1, len(codes)
    cuts = [0]
    for i, span in enumerate(spans):
        if span.token == gap:
            middle = (spans[i - 1].end + spans[i + 1].start) / 2
            cuts.append(min(n - 1, max(cuts[-1] + 1, round(middle / head.pool))))
    cuts.append(n)
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        return None
    return [(w, a, b) for w, a, b in zip(words, cuts, cuts[1:])]


__all__ = ["word_spans"]
