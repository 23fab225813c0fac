"""More text-to-speech data for the speaking probe (``benchmarks/speaking_probe.py --extra N``).

``N`` utterances in one house voice, synthesised with espeak-ng next to the run (never into its
corpus): every name the corpus carries in each of the corpus's *training* carrier sentences,
then plain sentences from the corpus grammar (a seed of their own, so they are new sentences), or
with ``words`` (``--vocab N``) strings of the trunk's ``N`` most frequent words instead: the
grammar knows about 150 words, so a branch trained on it has never heard most English words.
Held-out carriers ("Can you say X again?") are never used, so the probe's held-out sentences
stay unseen. Files are named by a hash of what they say, so a second probe reuses them.
"""

from __future__ import annotations

import random
from pathlib import Path

from toolkit.data.vocabulary import HOUSE_VOICE, house_utterances, word_strings


def extra_texts(names: list[str], count: int, seed: int = 1000, words: list[str] | None = None) -> list[str]:
    """``count`` sentences: each name in each training carrier (shuffled), then grammar
    sentences, or strings of ``words`` where given."""
    from plugins.spoken_qa.texts import TRAIN_CARRIERS, sentences

    rng = random.Random(seed)
    named = [carrier.format(n) for n in names for carrier in TRAIN_CARRIERS]
    rng.shuffle(named)
    texts, rest = named[:count], max(0, count - len(named))
    return texts + (word_strings(rng, words, rest) if words else sentences(rng, rest))


def extra_utterances(root: Path, names: list[str], count: int, voice: tuple[str, int, int] = HOUSE_VOICE,
                     words: list[str] | None = None) -> list[dict]:
    """Synthesise (or reuse) ``count`` extra utterances under ``root/audio`` -> corpus-style rows
    (``id``, ``text``, ``audio_filepath`` relative to ``root``, ``duration``, ``split: train``)."""
    return house_utterances(root, extra_texts(names, count, words=words), "x", voice)


def name_utterances(root: Path, names: list[str], voice: tuple[str, int, int] = HOUSE_VOICE) -> list[dict]:
    """Each name said on its own ("Abuja."), as :func:`extra_utterances` rows under ``root``."""
    return house_utterances(root, [f"{name}." for name in names], "n", voice)


__all__ = ["extra_texts", "extra_utterances", "name_utterances"]
