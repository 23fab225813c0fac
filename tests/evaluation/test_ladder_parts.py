"""Pieces of the hearing / speaking ladder and of the QA sample: intervals, name scoring,
question sampling across domains, the SFT system prompt, and letter-aligned speech rows."""

import json
from pathlib import Path

import pytest
import torch

from toolkit.evaluation.ladder import score
from toolkit.evaluation.qa import load_items, wilson_interval
from toolkit.speech_lm.data import system_prompts
from toolkit.speech_lm.speech_init import aligned_speech_rows, letter_aligned_tokens


class Letters:
    """A real (if minimal) text tokenizer: one id per character."""

    eos_ids = [0]

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


def test_wilson_interval_matches_published_values() -> None:
    # Wilson 95 % intervals: 0/10 -> [0, 0.2775], 5/10 -> [0.2366, 0.7634], 40/40 -> [0.9124, 1]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(40, 40) == pytest.approx((0.9124, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_score_counts_a_name_only_as_whole_words() -> None:
    utts = [{"text": "Can you say Paris again?", "entity": "Paris"},
            {"text": "The card in my hand says New Delhi.", "entity": "New Delhi"}]
    out = score(utts, ["can you say paris again", "the card in my hand says new delhiya"])
    assert out["n"] == 2 and out["entity_rate"] == 0.5
    assert out["wer"] == pytest.approx(1 / 13)


def test_questions_are_dealt_across_domains(tmp_path: Path) -> None:
    rows = [{"id": f"{d}{i}", "split": "test", "domain": d, "question": f"{d} {i}?", "key": "k"}
            for d in ("geo", "geo", "geo", "sci", "words") for i in range(3)]
    for i, r in enumerate(rows):
        r["id"] = f"q{i}"
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items(tmp_path, ("test",), 5)["test"]
    assert [it.question.split()[0] for it in items] == ["geo", "sci", "words", "geo", "sci"]


def test_system_prompt_per_mode_from_the_sft_dialogues(tmp_path: Path) -> None:
    dialogues = [{"mode": m, "turns": [{"role": "system", "text": f"say {m}"}, {"role": "user", "text": "x"}]}
                 for m in ("s2t", "t2t", "s2t")]
    (tmp_path / "dialogues.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dialogues))
    assert system_prompts(tmp_path) == {"s2t": "say s2t", "t2t": "say t2t"}
    assert system_prompts(tmp_path / "missing") == {}


def test_codes_fall_on_tokens_in_proportion_to_their_letters() -> None:
    tok = Letters()
    ids = [ord("a"), ord("b")]
    assert letter_aligned_tokens(4, ids, tok).tolist() == [97, 97, 98, 98]
    # a token spelled with 3 letters takes 3/4 of the time
    words = Letters()
    words.decode = lambda ids: {1: "x", 2: "yyy"}[ids[0]]
    assert letter_aligned_tokens(8, [1, 2], words).tolist() == [1, 1, 2, 2, 2, 2, 2, 2]


def test_aligned_rows_are_the_mean_text_embedding_each_code_heard() -> None:
    tok = Letters()
    embed = torch.randn(128, 4)
    pairs = [(torch.tensor([3, 3, 5, 5]), "ab"), (torch.tensor([5, 7]), "cd")]
    rows, counts = aligned_speech_rows(pairs, tok, embed, n_codes=8)
    assert counts.tolist() == [0, 0, 0, 2, 0, 3, 0, 1]
    torch.testing.assert_close(rows[3], embed[ord("a")])
    torch.testing.assert_close(rows[5], (2 * embed[ord("b")] + embed[ord("c")]) / 3)
    torch.testing.assert_close(rows[7], embed[ord("d")])
    assert torch.equal(rows[0], torch.zeros(4))


class LetterHead:
    """A minimal phoneme head whose "phonemes" are letters: code i is the i-th letter, read
    back by the arg-max of its vector, as the whisper_vq head reads its code vectors."""

    labels = "phonemes"
    alphabet = "abcdefghijklmnopqrstuvwxyz "

    def greedy(self, vectors: torch.Tensor) -> str:
        return "".join(self.alphabet[i] for i in vectors.argmax(-1).tolist()).strip()

    def reference(self, text: str) -> str:
        return "".join(c for c in text.lower() if c in self.alphabet)


class LetterTokenizer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ctc = LetterHead()

    def code_vectors(self) -> torch.Tensor:
        return torch.eye(len(LetterHead.alphabet))


def _codes(text: str) -> torch.Tensor:
    return torch.tensor([LetterHead.alphabet.index(c) for c in text])


def test_phoneme_reading_finds_a_name_said_whole_or_nearly() -> None:
    from toolkit.evaluation.phonemes import code_phonemes, phoneme_distance

    assert phoneme_distance("paris", "isawparistwice") == 0   # said somewhere in the sentence
    assert phoneme_distance("paris", "isawpaistwice") == 1    # one phoneme lost
    utts = [{"text": "I saw Paris", "entity": "Paris"}, {"text": "I saw Lima", "entity": "Lima"},
            {"text": "I saw Oslo", "entity": "Oslo"}]
    said = [_codes("i saw paris"), _codes("i saw lma"), _codes("i saw rome")]
    out = code_phonemes(LetterTokenizer(), utts, said, ["Paris", "Lima", "Oslo", "Rome"])
    assert out["entity_exact"] == pytest.approx(1 / 3)           # only Paris unbroken
    assert out["entity_closest"] == pytest.approx(2 / 3)         # "lma" is still closest to Lima, "rome" is Rome
    assert out["names"] == 4 and out["n"] == 3
    assert 0 < out["per"] < 0.5
    assert code_phonemes(torch.nn.Linear(1, 1), utts, said, []) is None   # no phoneme head: not read
    # two names said equally well: neither is "the closest", whatever order the names come in
    tie = code_phonemes(LetterTokenizer(), utts[:1], [_codes("i saw paris and rome")], ["Rome", "Paris"])
    assert tie["entity_closest"] == 0.0 and tie["entity_exact"] == 1.0


def test_a_spoken_answer_is_right_when_its_codes_say_the_key() -> None:
    from toolkit.evaluation.answer_phonemes import AnswerReader, phoneme_accuracy
    from toolkit.evaluation.qa import QAItem

    chile = QAItem("1", "test", "What is the capital of Chile?", "", "Santiago")
    peru = QAItem("2", "test", "Which country has Lima as its capital?", "", "Peru")
    items = [chile, peru, QAItem("3", "test", "What is the capital of Peru?", "", "Lima"),
             QAItem("4", "test", "Where is Santiago?", "", "Chile")]
    reader = AnswerReader.of(LetterTokenizer(), items)
    # "chile" is a key too and is said without a slip, but it is the question's own name
    right = reader(_codes("the capital of chile is santiago"), chile)
    assert right == {"phonemes": "the capital of chile is santiago", "key_said": True, "key_closest": True}
    slip = reader(_codes("the capital of chile is santigo"), chile)
    assert (slip["key_said"], slip["key_closest"]) == (False, True)   # nearly said: still the closest key
    wrong = reader(_codes("the capital of chile is lima"), chile)
    assert (wrong["key_said"], wrong["key_closest"]) == (False, False)
    silent = reader(_codes(""), peru)
    assert (silent["key_said"], silent["key_closest"]) == (False, False)  # saying nothing is never right
    records = [{"split": "test", "mode": "s2s"} | r for r in (right, slip, wrong)]
    records.append({"split": "test", "mode": "s2t", "output": "Santiago"})  # text answers are not read
    assert phoneme_accuracy(records, ("test",), ("s2s", "s2t")) == {
        "test": {"s2s": {"key_said": 1 / 3, "key_closest": 2 / 3, "n": 3}}}
    assert AnswerReader.of(torch.nn.Linear(1, 1), items) is None   # no phoneme head: nothing to read with
