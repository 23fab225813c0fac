"""whisper_vq word spans: forced alignment of the phoneme CTC head, boundaries between words."""

import torch

from plugins.whisper_vq.align import word_spans

ALPHABET = " abcd"


class PlannedHead:
    """A phoneme head whose posteriors are planned frame by frame: ``plan`` holds one label
    per 50 Hz frame (``.`` for the blank), read with probability 0.9."""

    alphabet, pool = ALPHABET, 2

    def __init__(self, plan: str, spoken: str = "ab cd") -> None:
        self.plan, self.spoken = plan, spoken

    def reference(self, text: str) -> str:
        return self.spoken

    def __call__(self, tokens):
        probs = torch.full((len(self.plan), len(ALPHABET) + 1), 0.1 / len(ALPHABET))
        for t, label in enumerate(self.plan):
            probs[t, 0 if label == "." else ALPHABET.index(label) + 1] = 0.9
        return probs.log()[None]


def spans(plan: str, spoken: str = "ab cd", text: str = "Ab, cd!"):
    codes = torch.arange(len(plan) // PlannedHead.pool)
    return word_spans(PlannedHead(plan, spoken), torch.eye(len(codes)), codes, text)


def test_boundary_falls_midway_between_the_words_and_spans_cover_every_code():
    # 'b' ends after frame 3, 'c' starts at frame 7: the cut is at frame 5.5 -> code 3 (pool 2)
    assert spans("aabb  .ccdd.") == [("Ab,", 0, 3), ("cd!", 3, 6)]
    # a longer pause before 'cd' moves the cut: 'c' starts at frame 11 -> (4 + 11) / 2 / 2 -> code 4
    assert spans("aabb  .....ccdd..") == [("Ab,", 0, 4), ("cd!", 4, 8)]


def test_words_that_cannot_be_placed_give_none():
    assert spans("aabb  .ccdd.", spoken="ab c d") is None  # espeak-ng made three words of two
    assert spans("abcd", spoken="ab cd") is None  # 2 codes cannot hold 5 labels
    assert spans("aabb  .ccdd.", spoken="abcd", text="abcd") is None  # one word: nothing to interleave
