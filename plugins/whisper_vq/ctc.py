"""A strictly local CTC head over quantised tokens: characters or espeak-ng phonemes.

The Whisper-decoder ASR loss can be met by a language model over the whole sequence: on a
small corpus it learns sentence templates and leaves names out of the codes. This head sees one
token at a time (no context), so the only way to transcribe an utterance is for every code to
carry what is spoken in its own 80 ms. Each token is unfolded into ``pool`` sub-frames (50 Hz),
so CTC has room for about 15 labels per second. The labels are letters, or phonemes (espeak-ng's
ASCII phoneme alphabet for the transcript): sounds are local where spelling is not.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

ALPHABET = " abcdefghijklmnopqrstuvwxyz'0123456789"
"""Character labels 1..len(ALPHABET); 0 is the blank."""

PHONEME_ALPHABET = " " + "".join(chr(c) for c in range(33, 127) if chr(c) not in "',%=_|")
"""Phoneme labels: espeak-ng's ``-x`` symbols without stress and pause marks, and a word gap."""

Labels = Literal["chars", "phonemes"]

_ESPEAK_THREADS = ThreadPoolExecutor(4)  # threads start on first use; phonemes are cached per text


def _squeeze(text: str, alphabet: str) -> str:
    """Anything outside ``alphabet`` becomes a space, spaces collapsed."""
    return re.sub(r" +", " ", re.sub(f"[^{re.escape(alphabet)}]", " ", text)).strip()


def normalise(text: str) -> str:
    """Lower case, anything outside :data:`ALPHABET` becomes a space, spaces collapsed."""
    return _squeeze(text.lower(), ALPHABET)


def char_ids(text: str) -> list[int]:
    """``text`` -> character label ids (1-based; see :data:`ALPHABET`)."""
    return [ALPHABET.index(c) + 1 for c in normalise(text)]


def phonemes(text: str, voice: str = "en-us") -> str:
    """``text`` -> its espeak-ng phonemes in :data:`PHONEME_ALPHABET`, words separated by spaces."""
    from toolkit.data.synth import phonemize

    return _squeeze(re.sub("[',%=]", "", phonemize(text, voice)), PHONEME_ALPHABET)  # no stress marks


def phoneme_ids(text: str, voice: str = "en-us") -> list[int]:
    """``text`` -> phoneme label ids (1-based; see :data:`PHONEME_ALPHABET`), by espeak-ng."""
    return [PHONEME_ALPHABET.index(c) + 1 for c in phonemes(text, voice)]


class LocalCTCHead(nn.Module):
    """``tokens[B,L,D]`` -> label log-probs ``[B, L*pool, len(alphabet)+1]``, each token read
    on its own."""

    def __init__(self, dim: int, pool: int, hidden: int = 256, labels: Labels = "chars",
                 voice: str = "en-us") -> None:
        super().__init__()
        self.pool, self.labels, self.voice = pool, labels, voice
        self.alphabet = PHONEME_ALPHABET if labels == "phonemes" else ALPHABET
        self.unfold = nn.Linear(dim, pool * hidden)
        self.out = nn.Sequential(nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, len(self.alphabet) + 1))

    def forward(self, tokens: Tensor) -> Tensor:
        frames = rearrange(self.unfold(tokens), "b l (p h) -> b (l p) h", p=self.pool)
        return self.out(frames).log_softmax(-1)

    def reference(self, text: str) -> str:
        """What :meth:`greedy` should read for transcript ``text`` (letters or phonemes)."""
        return normalise(text) if self.labels == "chars" else phonemes(text, self.voice)

    def label_ids(self, texts: list[str]) -> list[list[int]]:
        """Label ids of each transcript (phonemisation runs espeak-ng: in threads, cached)."""
        if self.labels == "chars":
            return [char_ids(t) for t in texts]
        return list(_ESPEAK_THREADS.map(phoneme_ids, texts, [self.voice] * len(texts)))

    def loss(self, tokens: Tensor, valid: Tensor, texts: list[str]) -> Tensor:
        """Mean CTC loss per label over the batch: ``tokens[B,L,D]``, ``valid[B,L]``."""
        log_probs = rearrange(self(tokens).float(), "b t v -> t b v")
        labels = [torch.tensor(ids, dtype=torch.long) for ids in self.label_ids(texts)]
        target_lengths = torch.tensor([len(x) for x in labels])
        targets = torch.cat(labels).to(tokens.device)
        return F.ctc_loss(log_probs, targets, valid.sum(1) * self.pool, target_lengths.to(tokens.device),
                          blank=0, reduction="mean", zero_infinity=True)

    @torch.no_grad()
    def greedy(self, tokens: Tensor) -> str:
        """Best-path transcript of ``tokens[L,D]`` (collapse repeats, drop blanks), in the
        head's labels (letters, or espeak-ng phonemes)."""
        best = self(tokens[None])[0].argmax(-1).tolist()
        chars = [self.alphabet[i - 1] for j, i in enumerate(best) if i and (j == 0 or i != best[j - 1])]
        return re.sub(r" +", " ", "".join(chars)).strip()
