"""Scoring: containment of the answer key in constructed transcripts, accuracy per split/mode,
corpus WER against hand-counted edits."""

import pytest

from toolkit.evaluation.qa import QAItem, accuracy, is_correct
from toolkit.evaluation.speech import corpus_wer


def item(key, aliases=()):
    return QAItem("1", "test", "q?", "a.", key, list(aliases))


@pytest.mark.parametrize("transcript,key,aliases,expected", [
    ("The capital of France is Paris.", "paris", (), True),
    ("the capital of france is PARIS", "paris", (), True),
    ("The capital of France is Lyon.", "paris", (), False),
    ("Parisian food is nice.", "paris", (), False),          # whole words only
    ("It was William Shakespeare.", "william shakespeare", (), True),
    ("It was William.", "william shakespeare", (), False),
    ("There are 7 continents.", "seven", ("7",), True),
    ("", "paris", (), False),
])
def test_is_correct_on_constructed_transcripts(transcript, key, aliases, expected):
    assert is_correct(transcript, item(key, aliases)) is expected


def test_accuracy_is_fraction_per_split_and_mode():
    recs = [{"split": "test", "mode": "s2s", "correct": c} for c in (True, False, False, True)]
    recs += [{"split": "test", "mode": "t2t", "correct": True}]
    recs += [{"split": "text_only", "mode": "s2s", "correct": c} for c in (False, False, True)]
    acc = accuracy(recs)
    assert acc["test"] == {"s2s": 0.5, "s2t": None, "t2s": None, "t2t": 1.0}
    assert acc["text_only"]["s2s"] == pytest.approx(1 / 3)
    assert set(acc) == {"test", "text_only"}


def test_corpus_wer_counts_edits_over_reference_words():
    pairs = [("the cat sat", "the cat sat"),            # 0 edits / 3
             ("a b c d", "a x c"),                     # 1 sub + 1 del / 4
             ("hello world", "")]                      # 2 del / 2
    assert corpus_wer(pairs) == pytest.approx(4 / 9)
    assert corpus_wer([]) is None


def test_an_unloadable_baseline_run_is_reported_not_fatal(tmp_path):
    from toolkit.evaluation.run import EvalParams, baseline_no_stage1

    broken = tmp_path / "old_run"
    (broken / "export").mkdir(parents=True)
    (broken / "export" / "export.json").write_text("{not json")
    result = baseline_no_stage1(EvalParams(baseline_run=str(broken)), {}, None, None, None)
    assert result["status"] == "not run" and str(broken) in result["reason"]
    missing = baseline_no_stage1(EvalParams(baseline_run=str(tmp_path / "nope")), {}, None, None, None)
    assert missing["status"] == "not run" and "does not exist" in missing["reason"]


def test_read_by_word_takes_a_flag_or_alone_and_names_a_typo():
    from toolkit.errors import RecipeError
    from toolkit.evaluation.run import EvalParams
    from toolkit.params import parse_params

    assert parse_params(EvalParams, {"read_by_word": True}).read_by_word is True
    assert parse_params(EvalParams, {"read_by_word": "alone"}).read_by_word == "alone"
    with pytest.raises(RecipeError, match="read_by_word"):
        parse_params(EvalParams, {"read_by_word": "alon"})
