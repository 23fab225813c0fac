"""The whole evaluation on a synthetic run folder, judged by the real ASR judge: report schema,
accuracy equal to the judged records, retention per stage, examples, plots, CLI, export stage."""

import json

import pytest

from toolkit.loading import load, load_run

pytestmark = pytest.mark.models


def test_report_schema_and_accuracy_from_records(evaluated):
    _, out, report = evaluated
    saved = json.loads((out / "report.json").read_text())
    assert set(saved["accuracy"]) == {"test", "text_only"}
    for split, modes in saved["accuracy"].items():
        assert set(modes) == {"s2s", "s2t", "t2s", "t2t"}
        for mode, value in modes.items():
            rows = [r for r in saved["records"] if r["split"] == split and r["mode"] == mode]
            assert len(rows) == saved["questions"][split]
            assert value == pytest.approx(sum(r["correct"] for r in rows) / len(rows))
    from toolkit.evaluation.qa import QAItem, is_correct

    for r in saved["records"]:                       # every verdict is the judge's containment test
        assert r["correct"] == is_correct(r["output"], QAItem(r["id"], r["split"], "", "", r["key"]))


def test_retention_latency_resynthesis_and_baselines(evaluated):
    _, _, report = evaluated
    ret = report["retention"]
    assert ret["stage2"]["status"] == "not run"
    for name in ("original", "stage1", "sft"):
        assert ret[name]["perplexity"] > 1
    # stage I keeps the text path: identical text behaviour to the original trunk
    assert ret["stage1"]["perplexity"] == ret["original"]["perplexity"]
    assert ret["stage1"]["accuracy"] == ret["original"]["accuracy"]
    assert ret["sft"]["perplexity"] != ret["original"]["perplexity"]
    assert report["latency"]["time_to_first_audio_s"]["mean"] > 0
    assert report["resynthesis"]["original_wer"] < 0.5      # espeak audio is near-perfect for the judge
    assert report["baselines"]["cascade"]["status"] == "run"
    assert report["baselines"]["no_stage1"]["status"] == "not run"


def test_ladder_per_stage_against_its_ceilings(evaluated):
    """Hearing and speaking of every LM stage the run has, in the keys scripts read, and the
    judge's ceilings on the same held-out entity utterances."""
    _, out, report = evaluated
    saved = json.loads((out / "report.json").read_text())
    assert saved["accuracy_n"] == {"test": 2, "text_only": 2}
    for split, modes in saved["accuracy_ci"].items():
        for mode, (low, high) in modes.items():
            assert low <= saved["accuracy"][split][mode] <= high
    ladder, ceiling = saved["ladder"], saved["ladder_ceiling"]
    assert ladder["stage2"]["status"] == "not run"
    for stage in ("stage1", "sft"):
        for rung in ("hearing", "speaking"):
            entry = ladder[stage][rung]
            assert entry["n"] == 2 and 0 <= entry["entity_rate"] <= 1 and entry["wer"] >= 0
    # the judge hears espeak-ng names in the original audio; an untrained LM hears none
    assert ceiling["hearing"]["entity_rate"] == 1.0
    assert ladder["stage1"]["hearing"]["entity_rate"] == 0.0
    assert "speaking_phonemes" not in ceiling   # mel_vq has no phoneme head to read codes with
    assert saved["accuracy_phonemes"] == {"test": {}, "text_only": {}}   # nor the QA answers' codes
    assert not any("key_closest" in r for r in saved["records"])
    for split, n in (("test", 2), ("text_only", 2)):   # the right answers through tokenizer + decoder
        top = saved["answer_ceiling"][split]
        assert top["n"] == n and 0 <= top["judge"] <= 1 and "key_closest" not in top
    assert saved["system_prompts"]["s2t"] == "Answer in s2t."
    md = (out / "report.md").read_text()
    assert "## Hearing and speaking" in md and "ladder.png" in md
    assert "right answer: judge" in md
    assert (out / "ladder.png").stat().st_size > 1000


def test_markdown_plots_and_examples_exist(evaluated):
    _, out, report = evaluated
    md = (out / "report.md").read_text()
    assert "S->S" in md and "accuracy.png" in md and "Text retention" in md
    assert (out / "accuracy.png").stat().st_size > 1000
    parts = report["seconds_by_part"]                  # where the evaluation's time went
    assert {"spoken QA", "retention and ladder per stage", "baselines"} <= set(parts)
    assert all(sec >= 0 for sec in parts.values()) and sum(parts.values()) <= report["seconds"]
    assert "Evaluation took" in md and "spoken QA" in md.split("Evaluation took")[1]
    assert report["examples"]
    for ex in report["examples"]:
        for rel in ex["files"].values():
            assert (out / rel).stat().st_size > 44


def test_export_stage_output_loads_like_the_run(evaluated, tmp_path):
    import torch

    from toolkit.loading import export_model

    run, _, _ = evaluated
    lm = load_run(run)
    export_model(lm, tmp_path / "exp")
    back = load(tmp_path / "exp")
    grid = torch.tensor([[[5, lm.tokens.speech_pad], [lm.tokens.modality_pad, 3], [7, lm.tokens.speech_pad]]])
    with torch.no_grad():
        assert torch.equal(lm.model(grid).text_logits, back.model(grid).text_logits)
        assert torch.equal(lm.model(grid).speech_logits, back.model(grid).speech_logits)


def test_the_batched_cascade_answers_as_one_at_a_time(evaluated):
    """The cascade baseline answers its questions in left-padded batches after the timed ones;
    each answer is the one the trunk gives to that question alone."""
    import torch

    from toolkit.evaluation import Judge
    from toolkit.evaluation.qa import SPLITS, load_items
    from toolkit.evaluation.retention import text_view
    from toolkit.evaluation.run import _original_trunk
    from toolkit.evaluation.speech import cascade

    run, _, report = evaluated
    assert report["baselines"]["cascade"]["time_to_first_audio_s"]["mean"] > 0
    lm, trunk = load_run(run), _original_trunk(run)
    with torch.no_grad():          # sharpened: the random trunk's answers then depend on the question
        for weight in (p for p in trunk.parameters() if p.dim() == 2):
            weight.mul_(30)
    items = [it for its in load_items(run / "corpus", SPLITS, 2, None).values() for it in its]
    view, judge = text_view(trunk, lm.tokens), Judge()
    alone = cascade(view, lm.text_tokenizer, judge, items, 8, batch_size=1, latency_items=0)["records"]
    batched = cascade(view, lm.text_tokenizer, judge, items, 8, batch_size=2, latency_items=1)["records"]
    assert alone[1]["text"] != alone[2]["text"]   # the first batch's answers differ: a row mixup would show
    assert [(r["id"], r["heard"], r["text"]) for r in batched] == [(r["id"], r["heard"], r["text"]) for r in alone]
