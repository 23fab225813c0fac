"""Speech for the words a corpus never says: strings of the trunk's commonest words, in one voice.

A corpus grammar knows a few hundred words, so a speech branch trained to read it aloud has
never heard most English words, and a held-out sentence with one unheard word ("The card in
my hand says ...") comes out wrong at that word. Strings of the trunk tokenizer's commonest
words ("Over card maybe hand ...") spoken by one house voice with espeak-ng give it the rest of
the everyday vocabulary. The strings are drawn from the tokenizer, never from a corpus split,
so nothing here is taken from an evaluation sentence.
"""

from __future__ import annotations

import random
from pathlib import Path

HOUSE_VOICE = ("en-gb+f3", 149, 64)
"""espeak-ng voice, speed (words/min) and pitch of extra speech."""


def frequent_words(text_tokenizer, top: int) -> list[str]:
    """The trunk tokenizer's ``top`` most frequent lower-case word pieces that start a word.

    Byte-pair merges are learnt in order of frequency, so the lowest ids that decode to a space
    and letters are the commonest words (" the", " and", ...) and word beginnings (" signific");
    both are what a reader of unseen words needs, so both are kept, but pieces without a vowel
    (" th", " st"), which espeak-ng would spell out, are not."""
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
    """``count`` strings of ``length`` ``words`` each, as sentences ("Over card maybe ...").

    Words are dealt from shuffled decks of the whole list, so every word is said equally often
    (counts differ by at most one). Drawn independently, 5000 words said ~3.4 times each on
    average leave about a third of them said at most twice, and the reader misreads those."""
    out: list[str] = []
    deck: list[str] = []
    for _ in range(count):
        chosen = []
        for _ in range(rng.randint(*length)):
            if not deck:
                deck = rng.sample(words, len(words))
            chosen.append(deck.pop())
        out.append(" ".join(chosen).capitalize() + ".")
    return out


def house_utterances(root: Path, texts: list[str], prefix: str,
                     voice: tuple[str, int, int] = HOUSE_VOICE) -> list[dict]:
    """``texts`` synthesised (or reused: files are named by what they say) in ``voice`` under
    ``root/audio`` -> training rows (``id`` ``{prefix}000000``..., ``text``, ``split: train``,
    ``duration``, ``audio_filepath`` relative to ``root``)."""
    from toolkit.data.synth import SynthJob, Voice, synthesize_all

    speaker = Voice(*voice)
    jobs = [SynthJob(f"{prefix}{i:06d}", text, speaker) for i, text in enumerate(texts)]
    done = synthesize_all(jobs, Path(root) / "audio", description="synthesising extra speech")
    return [{"id": job.stem, "text": job.text, "split": "train", "duration": seconds,
             "audio_filepath": str(path.relative_to(root))} for job, (path, seconds) in zip(jobs, done)]


def vocabulary_utterances(root: Path, text_tokenizer, count: int, top: int = 5000, seed: int = 0) -> list[dict]:
    """``count`` strings of ``text_tokenizer``'s ``top`` commonest words, spoken in the house voice
    under ``root`` (:func:`house_utterances` rows with ids ``v000000``...)."""
    if count <= 0:
        return []
    words = frequent_words(text_tokenizer, top)
    return house_utterances(root, word_strings(random.Random(seed), words, count), "v")


__all__ = ["HOUSE_VOICE", "frequent_words", "word_strings", "house_utterances", "vocabulary_utterances"]
