"""Text normalisation for scoring transcripts, word error rate, answer matching.

Normalisation: lowercase; digits spelled out as words ("42" -> "forty two", "3.5" ->
"three point five", "1st" -> "first"); "%" -> "percent", "&" -> "and"; hyphens and other
punctuation become spaces; apostrophes are dropped ("don't" -> "dont"); whitespace collapsed.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand")]
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """``1234`` -> ``"one thousand two hundred thirty four"`` (no "and")."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for size, name in _SCALES:
        if n >= size:
            rest = n % size
            return (number_to_words(n // size) + " " + name
                    + ("" if rest == 0 else " " + number_to_words(rest)))
    raise AssertionError(n)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell(match: re.Match) -> str:
    whole, frac, suffix = match.group(1), match.group(2), match.group(3)
    words = number_to_words(int(whole.replace(",", "")))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    if suffix:
        words = _ordinal(words)
    return f" {words} "


def normalize_text(text: str) -> str:
    """Canonical form for comparing transcripts (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("%", " percent ").replace("&", " and ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(\d+)(?:\.(\d+))?(st|nd|rd|th)?\b", _spell, text)
    text = re.sub(r"[’'`]", "", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(references: list[str] | str, hypotheses: list[str] | str, normalize: bool = True) -> float:
    """Corpus word error rate: total word edits / total reference words (0.0 .. can exceed 1)."""
    if isinstance(references, str):
        references, hypotheses = [references], [hypotheses]
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    prep = normalize_text if normalize else (lambda s: s)
    edits = words = 0
    for ref, hyp in zip(references, hypotheses):
        r, h = prep(ref).split(), prep(hyp).split()
        edits += edit_distance(r, h)
        words += len(r)
    return edits / max(1, words)


def contains_answer(transcript: str, key: str | list[str]) -> bool:
    """Whether a normalised answer key (or any of several) appears as whole words in the transcript."""
    keys = [key] if isinstance(key, str) else list(key)
    text = f" {normalize_text(transcript)} "
    return any(f" {normalize_text(k)} " in text for k in keys if normalize_text(k))
