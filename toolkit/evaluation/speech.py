"""Speech-side measurements: tokenizer/decoder resynthesis WER, answer latency, and the
cascade baseline (judge ASR -> the original trunk in text -> espeak-ng -> judge)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from toolkit.speech_lm.inference import respond, synthesize
from toolkit.evaluation.qa import QAItem, is_correct, question_audio

CASCADE_VOICE = ("en-us", 165, 50)


def corpus_wer(pairs: list[tuple[str, str]]) -> float | None:
    """Word error rate over ``(reference, hypothesis)`` pairs: total word edits over total
    reference words, after the judge's normalisation; None without reference words."""
    from toolkit.evaluation import normalize_text, wer

    if not pairs or not any(normalize_text(ref).split() for ref, _ in pairs):
        return None
    return wer([r for r, _ in pairs], [h for _, h in pairs])


@torch.no_grad()
def resynthesis(lm, judge, utterances: list[dict], corpus: Path,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Judge WER of the original recordings and of their tokenizer -> decoder resynthesis."""
    from toolkit.data.audio import load_audio

    original, resynth, seconds = [], [], 0.0
    for utt in utterances:
        rate = lm.tokenizer.sample_rate
        wav = load_audio(corpus / utt["audio_filepath"], rate)
        codes, lengths = lm.tokenizer.encode(wav[None], torch.tensor([wav.numel()]))
        out, out_rate = synthesize(lm, codes[0, : int(lengths[0])])
        original.append((utt["text"], judge.transcribe_one(wav, rate)))
        resynth.append((utt["text"], judge.transcribe_one(out, out_rate) if out.numel() else ""))
        seconds += wav.numel() / rate
        if progress is not None:
            progress(1)
    return {"utterances": len(utterances), "audio_seconds": round(seconds, 2),
            "original_wer": corpus_wer(original), "resynthesized_wer": corpus_wer(resynth),
            "samples": [{"text": ref, "original": o, "resynthesized": r}
                        for (ref, o), (_, r) in list(zip(original, resynth))[:3]]}


def latency(lm, items: list[QAItem], config, mode: str = "s2s",
            progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Time to first audio and real-time factor of streamed speech answers (one at a time)."""
    firsts, rtfs, audio = [], [], []
    for item in items:
        question = item.question if mode[0] == "t" else question_audio(item, lm.tokenizer.sample_rate)
        answer = respond(lm, question, mode, config=config, on_audio=lambda wav: None)
        if answer.first_audio_s is not None:
            firsts.append(answer.first_audio_s)
        if answer.rtf is not None:
            rtfs.append(answer.rtf)
        audio.append(answer.audio_seconds)
        if progress is not None:
            progress(1)
    return {"mode": mode, "answers": len(items),
            "time_to_first_audio_s": _summary(firsts), "real_time_factor": _summary(rtfs),
            "answer_audio_s": _summary(audio)}


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": round(statistics.fmean(values), 4), "median": round(statistics.median(values), 4),
            "max": round(max(values), 4)}


def _cascade_texts(trunk_view, tok, judge, items: list[QAItem], max_new_tokens: int) -> list[tuple[str, str]]:
    """``(heard, text)`` per question: the judge's transcript of its audio and the original
    trunk's greedy text answer to it, the questions answered as one batch."""
    from toolkit.textgen import generate

    heard = [judge.transcribe_one(question_audio(item, 16000), 16000) for item in items]
    prompts = [tok.chat([{"role": "user", "content": h or item.question}]) for h, item in zip(heard, items)]
    answers = generate(trunk_view, prompts, max_new_tokens, stop_ids=tok.eos_ids, pad_id=tok.pad_id)
    return [(h, tok.decode([i for i in ids if i not in tok.eos_ids]).strip()) for h, ids in zip(heard, answers)]


@torch.no_grad()
def cascade(trunk_view, tok, judge, items: list[QAItem], max_new_tokens: int = 48,
            progress: Callable[[int], None] | None = None, batch_size: int = 8,
            latency_items: int = 2) -> dict[str, Any]:
    """The cascade baseline on spoken questions: judge ASR -> original trunk (its chat template,
    greedy) -> espeak-ng -> judge; right when the final transcript contains the key. The first
    ``latency_items`` questions are answered one at a time and timed from question audio to the
    spoken answer (a user's wait); the rest ``batch_size`` at a time (one at a time, the trunk's
    per-token overhead made this baseline a third of the main job's evaluation)."""
    from toolkit.data.synth import Voice, synthesize as speak

    records, firsts = [], []

    def score(item: QAItem, heard: str, text: str, spoken: torch.Tensor) -> None:
        transcript = judge.transcribe_one(spoken, 16000) if spoken.numel() else ""
        records.append({"id": item.id, "split": item.split, "heard": heard, "text": text,
                        "output": transcript, "correct": bool(is_correct(transcript, item)),
                        "text_correct": bool(is_correct(text, item))})
        if progress is not None:
            progress(1)

    def say(text: str) -> torch.Tensor:
        return speak(text, Voice(*CASCADE_VOICE), 16000) if text else torch.zeros(0)

    timed = min(latency_items, len(items))
    for item in items[:timed]:
        start = time.perf_counter()
        (heard, text), = _cascade_texts(trunk_view, tok, judge, [item], max_new_tokens)
        spoken = say(text)
        firsts.append(time.perf_counter() - start)
        score(item, heard, text, spoken)
    for begin in range(timed, len(items), batch_size):
        batch = items[begin: begin + batch_size]
        for item, (heard, text) in zip(batch, _cascade_texts(trunk_view, tok, judge, batch, max_new_tokens)):
            score(item, heard, text, say(text))
    by_split: dict[str, dict[str, float]] = {}
    for split in sorted({r["split"] for r in records}):
        rows = [r for r in records if r["split"] == split]
        by_split[split] = {"s2s": sum(r["correct"] for r in rows) / len(rows),
                           "s2t": sum(r["text_correct"] for r in rows) / len(rows)}
    return {"status": "run", "accuracy": by_split, "time_to_first_audio_s": _summary(firsts),
            "records": records}


__all__ = ["corpus_wer", "resynthesis", "latency", "cascade"]
