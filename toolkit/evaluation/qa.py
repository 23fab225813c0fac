"""Spoken question answering in the four modes, scored as in the paper: a speech answer is
transcribed by the ASR judge, and an answer counts as right when the (normalised) short
answer ``key`` (or one of its ``aliases``) appears in its text or transcript."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.speech_lm.inference import MODES, prompt_grid, speech_codes_of, synthesize

SPLITS = ("test", "text_only")
Reader = Callable[[Tensor, "QAItem"], dict[str, Any]]
QUESTION_VOICE = ("en-us", 165, 50)
"""espeak-ng voice (name, speed, pitch) used to speak a question that has no recording."""


@dataclass
class QAItem:
    """One question: ``key`` (and ``aliases``) is what a right answer must contain;
    ``audio`` the spoken question's file (None: it is spoken with espeak-ng when needed)."""

    id: str
    split: str
    question: str
    answer: str
    key: str
    aliases: list[str] = field(default_factory=list)
    audio: Path | None = None


def load_items(corpus: Path, splits: tuple[str, ...] = SPLITS, max_per_split: int | None = None,
               manifest: Path | None = None) -> dict[str, list[QAItem]]:
    """QA items per split from ``corpus/qa.jsonl`` (or ``manifest``): at most ``max_per_split``
    of each, taken from the rows' ``domain`` groups in turn (file order within a group), so a
    small sample still covers every kind of question."""
    from toolkit.io import read_jsonl

    qa_path = Path(manifest) if manifest else corpus / "qa.jsonl"
    audio_of = {}
    utt_path = corpus / "utterances.jsonl"
    if utt_path.is_file():
        audio_of = {u["id"]: corpus / u["audio_filepath"] for u in read_jsonl(utt_path)}
    out: dict[str, list[QAItem]] = {s: [] for s in splits}
    rows = list(enumerate(read_jsonl(qa_path), start=1))
    order = _turn_order(rows)
    for lineno, row in sorted(rows, key=lambda r: order[r[0]]):
        split = row.get("split", "test")
        if split not in out or (max_per_split is not None and len(out[split]) >= max_per_split):
            continue
        missing = [k for k in ("question", "key") if not isinstance(row.get(k), str)]
        if missing:
            raise ToolkitError(f"{qa_path}:{lineno}: QA row without a '{missing[0]}' string")
        utt = row.get("question_utt")
        audio = audio_of.get(utt) if utt else None
        if audio is None and isinstance(row.get("question_audio"), str):
            audio = (qa_path.parent / row["question_audio"])
        out[split].append(QAItem(str(row.get("id", lineno)), split, row["question"],
                                 str(row.get("answer", "")), row["key"],
                                 list(row.get("aliases") or []), audio))
    return out


def _turn_order(rows: list[tuple[int, dict]]) -> dict[int, tuple[int, int]]:
    """Line number -> sort key that deals each split's rows out by ``domain``, in turn."""
    seen: dict[tuple[str, str], int] = {}
    order = {}
    for lineno, row in rows:
        group = (str(row.get("split", "test")), str(row.get("domain", "")))
        seen[group] = seen.get(group, 0) + 1
        order[lineno] = (seen[group], lineno)
    return order


def is_correct(text: str, item: QAItem) -> bool:
    """The judge's containment test of ``key`` or any alias in ``text``."""
    from toolkit.evaluation import contains_answer

    keys = [k for k in [item.key, *item.aliases] if k]
    return bool(keys) and contains_answer(text, keys)


def question_audio(item: QAItem, sample_rate: int) -> Tensor:
    """The spoken question ``wav[T]`` at ``sample_rate`` (espeak-ng when it has no file)."""
    from toolkit.data.audio import load_audio
    from toolkit.data.synth import Voice, synthesize

    if item.audio is not None:
        return load_audio(item.audio, sample_rate)
    return synthesize(item.question, Voice(*QUESTION_VOICE), sample_rate)


def _prompts(lm, mode: str, items: list[QAItem], system: str | None) -> list[Tensor]:
    if mode[0] == "t":
        return [prompt_grid(lm, mode, item.question, system) for item in items]
    return [prompt_grid(lm, mode, question_audio(item, lm.tokenizer.sample_rate), system)
            for item in items]


def answer_batch(lm, mode: str, items: list[QAItem], config, judge=None,
                 keep_audio: bool = False, system: str | None = None,
                 reader: Reader | None = None) -> list[dict[str, Any]]:
    """Answer ``items`` in ``mode`` in one generation batch -> one record per item:
    ``id, split, mode, question, key, output`` (answer text or judge transcript),
    ``correct``, ``audio_seconds`` (+ ``wav``/``sample_rate`` with ``keep_audio``).
    ``system``: the system prompt opening the chat (None: the trunk template's default);
    ``reader(codes, item)``: fields added to each speech answer's record, from its codes ``[n]``."""
    from toolkit.speech_lm.generate import generate

    outs = generate(lm.model, _prompts(lm, mode, items, system), config)
    records = []
    for item, out in zip(items, outs):
        rec: dict[str, Any] = {"id": item.id, "split": item.split, "mode": mode,
                               "question": item.question, "key": item.key, "audio_seconds": 0.0}
        if mode[2] == "t":
            rec["output"] = lm.text_tokenizer.decode(out.text_ids)
        else:
            if judge is None:
                raise ToolkitError(f"mode {mode} needs the ASR judge to score speech answers")
            codes = speech_codes_of(out.ids, lm.tokens)
            wav, rate = synthesize(lm, codes)
            rec |= reader(codes, item) if reader is not None else {}
            rec["output"] = judge.transcribe_one(wav, rate) if wav.numel() else ""
            rec["audio_seconds"] = wav.numel() / rate
            if keep_audio:
                rec["wav"], rec["sample_rate"] = wav, rate
        rec["correct"] = bool(is_correct(rec["output"], item))
        records.append(rec)
    return records


def run_qa(lm, items: dict[str, list[QAItem]], config, judge=None, modes: tuple[str, ...] = MODES,
           batch_size: int = 8, keep_audio: int = 0,
           progress: Callable[[int], None] | None = None,
           system: dict[str, str] | None = None, reader: Reader | None = None) -> list[dict[str, Any]]:
    """Every item of every split in every mode -> records (see :func:`answer_batch`, which
    ``reader`` is passed to). The first ``keep_audio`` items of each split and speech-answer
    mode keep their audio; ``system[mode]`` is the system prompt of that mode's chats."""
    records = []
    for split, split_items in items.items():
        for mode in modes:
            for start in range(0, len(split_items), batch_size):
                batch = split_items[start:start + batch_size]
                with torch.no_grad():
                    recs = answer_batch(lm, mode, batch, config, judge, keep_audio=start < keep_audio,
                                        system=(system or {}).get(mode), reader=reader)
                for i, rec in enumerate(recs):
                    if start + i >= keep_audio:
                        rec.pop("wav", None)
                records += recs
                if progress is not None:
                    progress(len(batch))
    return records


def _per_cell(records: list[dict[str, Any]], splits: tuple[str, ...], modes: tuple[str, ...],
              summary: Callable[[int, int], Any]) -> dict[str, dict[str, Any]]:
    """``{split: {mode: summary(hits, n)}}`` over the records of each split and mode."""
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        out[split] = {}
        for mode in modes:
            hits = [r["correct"] for r in records if r["split"] == split and r["mode"] == mode]
            out[split][mode] = summary(sum(hits), len(hits))
    return out


def accuracy(records: list[dict[str, Any]], splits: tuple[str, ...] = SPLITS,
             modes: tuple[str, ...] = MODES) -> dict[str, dict[str, float | None]]:
    """``{split: {mode: fraction correct}}``; None where a split has no records of a mode."""
    return _per_cell(records, splits, modes, lambda hits, n: hits / n if n else None)


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion ``hits / n`` (None for ``n == 0``); unlike the
    normal approximation it stays inside [0, 1] and is not empty at 0 or n hits."""
    if n == 0:
        return None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def accuracy_interval(records: list[dict[str, Any]], splits: tuple[str, ...] = SPLITS,
                      modes: tuple[str, ...] = MODES) -> dict[str, dict[str, list[float] | None]]:
    """``{split: {mode: [low, high]}}``: the 95 % interval of each accuracy."""
    return _per_cell(records, splits, modes,
                     lambda hits, n: list(ci) if (ci := wilson_interval(hits, n)) else None)


__all__ = ["QAItem", "SPLITS", "load_items", "is_correct", "question_audio", "answer_batch",
           "run_qa", "accuracy", "wilson_interval", "accuracy_interval"]
