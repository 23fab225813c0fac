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

HOUSE_VOICE = ("en-gb+f3", 149, 64)
"""espeak-ng voice, speed (words/min) and pitch of the extra utterances."""


def extra_texts(names: list[str], count: int, seed: int = 1000, words: list[str] | None = None) -> list[str]:
    """``count`` sentences: each name in each training carrier (shuffled), then grammar
    sentences, or strings of ``words`` where given."""
    from plugins.spoken_qa.texts import TRAIN_CARRIERS, sentences

    rng = random.Random(seed)
    named = [carrier.format(n) for n in names for carrier in TRAIN_CARRIERS]
    rng.shuffle(named)
    texts, rest = named[:count], max(0, count - len(named))
    return texts + (word_strings(rng, words, rest) if words else sentences(rng, rest))


def frequent_words(text_tokenizer, top: int) -> list[str]:
    """The trunk tokenizer's ``top`` most frequent lower-case word pieces that start a word.

    Byte-pair merges are learnt in order of frequency, so the lowest ids that decode to a space
    and letters are the commonest words (" the", " and", ...) and word beginnings (" signific");
    both are what a reader of unseen words needs, so both are kept, but pieces without a vowel
    (" th", " st"), which espeak-ng would spell out, are not. Nothing here is drawn from an
    evaluation sentence."""
    words: list[str] = []
    for i in range(text_tokenizer.vocab_size):
        piece = text_tokenizer.decode([i])
        word = piece[1:]
        if (piece.startswith(" ") and len(word) > 1 and word.isascii() and word.isalpha() and word.islower()
                and any(v in word for v in "aeiouy")):
            words.append(word)
            if len(words) == top:
                break
    return words


def word_strings(rng: random.Random, words: list[str], count: int, length: tuple[int, int] = (5, 9)) -> list[str]:
    """``count`` strings of ``length`` random ``words`` each, as sentences ("Over card maybe ...")."""
    out = []
    for _ in range(count):
        chosen = rng.sample(words, min(len(words), rng.randint(*length)))
        out.append(" ".join(chosen).capitalize() + ".")
    return out


def extra_utterances(root: Path, names: list[str], count: int, voice: tuple[str, int, int] = HOUSE_VOICE,
                     words: list[str] | None = None) -> list[dict]:
    """Synthesise (or reuse) ``count`` extra utterances under ``root/audio`` -> corpus-style rows
    (``id``, ``text``, ``audio_filepath`` relative to ``root``, ``duration``, ``split: train``)."""
    return house_utterances(root, extra_texts(names, count, words=words), "x", voice)


def name_utterances(root: Path, names: list[str], voice: tuple[str, int, int] = HOUSE_VOICE) -> list[dict]:
    """Each name said on its own ("Abuja."), as :func:`extra_utterances` rows under ``root``."""
    return house_utterances(root, [f"{name}." for name in names], "n", voice)


def house_utterances(root: Path, texts: list[str], prefix: str, voice: tuple[str, int, int]) -> list[dict]:
    """``texts`` synthesised (or reused) in ``voice`` under ``root/audio`` -> training rows with
    ids ``{prefix}000000``, ``{prefix}000001``, ..."""
    from toolkit.data.synth import SynthJob, Voice, synthesize_all

    speaker = Voice(*voice)
    jobs = [SynthJob(f"{prefix}{i:06d}", text, speaker) for i, text in enumerate(texts)]
    done = synthesize_all(jobs, root / "audio", description="synthesising extra text-to-speech data")
    return [{"id": job.stem, "text": job.text, "split": "train", "duration": seconds,
             "audio_filepath": str(path.relative_to(root))} for job, (path, seconds) in zip(jobs, done)]
