"""Speech for words a corpus never says (toolkit.data.vocabulary): the trunk tokenizer's
commonest words, in strings spoken by one house voice."""

from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="module")
def small_bpe():
    """A byte-level BPE trained here on text where 'the' is the commonest word and 'st' (no vowel)
    is common too."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from plugins.llama.tokenizer import HFTextTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    text = ["the cat sat on the mat with the dog"] * 50 + ["a strange word appeared"] * 5 + ["st st"] * 30
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return HFTextTokenizer(bpe)


def test_frequent_words_are_the_first_word_pieces_with_a_vowel(small_bpe):
    """Byte-pair merges come in frequency order, so the first pieces that start a word are the
    commonest words; pieces without a vowel (which espeak-ng would spell) are left out."""
    from toolkit.data.vocabulary import frequent_words, word_strings

    words = frequent_words(small_bpe, 8)
    assert words[0] == "the" and "st" not in words and len(words) == len(set(words)) == 8
    assert set(words) >= {"cat", "sat", "on", "mat", "with", "dog"}
    strings = word_strings(random.Random(0), words, 3, length=(2, 2))
    assert [len(s.split()) for s in strings] == [2, 2, 2] and all(s.endswith(".") for s in strings)


def test_word_strings_say_every_word_equally_often():
    """Words are dealt from shuffled decks: 1000 strings of 5-9 of 300 words say each word within
    one time of every other (independent draws spread them from about 10 to 35 times)."""
    from collections import Counter

    from toolkit.data.vocabulary import word_strings

    words = [f"w{i}" for i in range(300)]
    strings = word_strings(random.Random(3), words, 1000)
    counts = Counter(w.strip(".").lower() for s in strings for w in s.split())
    assert set(counts) == set(words) and max(counts.values()) - min(counts.values()) <= 1
    assert {len(s.split()) for s in strings} == set(range(5, 10))
    assert word_strings(random.Random(4), words, 1000) != strings


def test_vocabulary_utterances_say_common_words_and_reuse_their_audio(tmp_path, small_bpe):
    """Strings of the commonest words only, spoken (durations grow with the words said), the same
    rows from the same seed without synthesising again, and nothing for a count of 0."""
    from toolkit.data.vocabulary import frequent_words, vocabulary_utterances

    words = set(frequent_words(small_bpe, 6))
    rows = vocabulary_utterances(tmp_path, small_bpe, 3, top=6, seed=1)
    assert [r["id"] for r in rows] == ["v000000", "v000001", "v000002"]
    assert all(r["split"] == "train" for r in rows)
    assert all(w.strip(".").lower() in words for r in rows for w in r["text"].split())
    assert all(r["duration"] > 0.25 * len(r["text"].split()) for r in rows)
    stamps = [(tmp_path / r["audio_filepath"]).stat().st_mtime_ns for r in rows]
    assert vocabulary_utterances(tmp_path, small_bpe, 3, top=6, seed=1) == rows
    assert [(tmp_path / r["audio_filepath"]).stat().st_mtime_ns for r in rows] == stamps
    assert vocabulary_utterances(tmp_path, small_bpe, 3, top=6, seed=2) != rows
    assert vocabulary_utterances(tmp_path, small_bpe, 0) == []
