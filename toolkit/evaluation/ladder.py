"""The ladder below spoken QA: can each LM stage's model *hear* a name and *say* one?

- **hearing**: the model transcribes held-out utterances from their speech codes in the ASR
  layout stage I trains (``[sosp, codes, eosp]`` then text); scored by WER against the
  transcript and by the share of utterances whose name is in the transcript. The ceiling is
  the ASR judge's own transcript of the original audio.
- **speaking**: the model reads the same sentences aloud in the TTS layout (text, then ``sosp``
  and speech until ``eosp``); the decoder voices the codes and the judge transcribes them. The
  ceiling is the judge on the resynthesis of the sentences' own audio (tokenizer -> decoder),
  so the decoder's loss is not counted against the LM. Where the speech tokenizer has a
  phoneme head, ``speaking_phonemes`` also reads the said codes with it, decoder-free
  (:mod:`toolkit.evaluation.phonemes`), against the same head on the sentences' own codes.

Utterances are corpus rows with a name to find (``entity``), e.g. the spoken_qa corpus's
``entity`` rows of the ``test`` split: carrier sentences and voices training never used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

Progress = Callable[[int], None] | None


def ladder_utterances(corpus: Path, split: str = "test", limit: int | None = None) -> list[dict]:
    """Utterances of ``split`` in ``corpus/utterances.jsonl`` that carry an ``entity`` name."""
    from toolkit.io import read_jsonl

    path = corpus / "utterances.jsonl"
    rows = [u for u in read_jsonl(path) if u.get("split") == split and u.get("entity")] \
        if path.is_file() else []
    return rows[:limit] if limit is not None else rows


def score(utterances: list[dict], hypotheses: list[str]) -> dict[str, Any]:
    """``{wer, entity_rate, n}`` of ``hypotheses`` against the utterances' text and names."""
    from toolkit.evaluation import contains_answer
    from toolkit.evaluation.speech import corpus_wer

    n = len(utterances)
    hits = sum(contains_answer(h, u["entity"]) for u, h in zip(utterances, hypotheses))
    return {"wer": corpus_wer([(u["text"], h) for u, h in zip(utterances, hypotheses)]),
            "entity_rate": hits / n if n else None, "n": n}


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@torch.no_grad()
def transcribe(model: nn.Module, codes: list[Tensor], max_new_tokens: int = 40,
               batch_size: int = 16, progress: Progress = None) -> list[str]:
    """The model's greedy transcripts of speech ``codes[i][n_i]`` (ASR layout)."""
    from toolkit.speech_lm.generate import GenerationConfig, generate
    from toolkit.speech_lm.layout import speech_positions

    tok, config = model.text_tokenizer, GenerationConfig(max_new_tokens=max_new_tokens)
    out = []
    for batch in _batches(codes, batch_size):
        prompts = [speech_positions(c, model.tokens) for c in batch]
        out += [tok.decode(g.text_ids).strip() for g in generate(model, prompts, config)]
        if progress is not None:
            progress(len(batch))
    return out


@torch.no_grad()
def read_aloud(model: nn.Module, texts: list[str], max_new_tokens: int = 100,
               batch_size: int = 16, progress: Progress = None, by_word: bool | str = False) -> list[Tensor]:
    """Speech codes ``[n]`` the model says for each text (greedy): in the TTS layout (the text,
    then the first speech segment), or ``by_word`` in the word-interleaved one
    (:func:`toolkit.speech_lm.interleave.read_interleaved`; ``by_word="alone"``: each word
    with no sentence before it)."""
    from toolkit.speech_lm.generate import GenerationConfig, generate

    if by_word:
        from toolkit.speech_lm.interleave import read_interleaved

        out = read_interleaved(model, texts, batch_size=batch_size, alone=by_word == "alone")
        if progress is not None:
            progress(len(texts))
        return out
    from toolkit.speech_lm.layout import text_positions

    tokens, tok = model.tokens, model.text_tokenizer
    config = GenerationConfig(max_new_tokens=max_new_tokens, stop_after_speech=True)
    out = []
    for batch in _batches(texts, batch_size):
        opener = torch.tensor([[tokens.sosp, tokens.speech_pad]])
        prompts = [torch.cat([text_positions(tok.encode(t), tokens), opener]) for t in batch]
        out += [g.speech[0] if g.speech else torch.zeros(0, dtype=torch.long)
                for g in generate(model, prompts, config)]
        if progress is not None:
            progress(len(batch))
    return out


def voiced_transcripts(lm, judge, codes: list[Tensor], progress: Progress = None) -> list[str]:
    """The judge's transcripts of ``codes`` voiced by ``lm``'s decoder."""
    from toolkit.speech_lm.inference import synthesize

    out = []
    for c in codes:
        wav, rate = synthesize(lm, c)
        out.append(judge.transcribe_one(wav, rate) if wav.numel() else "")
        if progress is not None:
            progress(1)
    return out


@torch.no_grad()
def encode_wav(tokenizer: nn.Module, wav: Tensor) -> Tensor:
    """Speech codes ``[n]`` of one waveform ``wav[T]`` at the tokenizer's sample rate."""
    codes, lengths = tokenizer.encode(wav[None], torch.tensor([wav.numel()]))
    return codes[0, : int(lengths[0])].cpu()


def encode_utterances(tokenizer: nn.Module, utterances: list[dict], corpus: Path) -> list[Tensor]:
    """Speech codes ``[n]`` of each utterance's audio."""
    from toolkit.data.audio import load_audio

    return [encode_wav(tokenizer, load_audio(corpus / u["audio_filepath"], tokenizer.sample_rate))
            for u in utterances]


def judge_transcripts(judge, utterances: list[dict], corpus: Path, progress: Progress = None) -> list[str]:
    """The judge's transcripts of the utterances' original audio."""
    from toolkit.data.audio import load_audio
    from toolkit.evaluation.judge import JUDGE_RATE

    out = []
    for u in utterances:
        out.append(judge.transcribe_one(load_audio(corpus / u["audio_filepath"], JUDGE_RATE), JUDGE_RATE))
        if progress is not None:
            progress(1)
    return out


def ceilings(lm, judge, utterances: list[dict], corpus: Path, codes: list[Tensor],
             progress: Progress = None, names: list[str] = ()) -> dict[str, Any]:
    """The judge on the original audio (hearing's ceiling) and on its resynthesis (speaking's);
    the phoneme head on the utterances' own codes, against ``names`` (``speaking_phonemes``)."""
    heard = judge_transcripts(judge, utterances, corpus, progress)
    out = {"hearing": score(utterances, heard),
           "speaking": score(utterances, voiced_transcripts(lm, judge, codes, progress))}
    return _with_phonemes(out, lm, utterances, codes, names)


def _with_phonemes(entry: dict, lm, utterances: list[dict], codes: list[Tensor], names) -> dict:
    from toolkit.evaluation.phonemes import code_phonemes

    read = code_phonemes(lm.tokenizer, utterances, codes, list(names))
    if read is not None:
        entry["speaking_phonemes"] = read
    return entry


def stage_rungs(model: nn.Module, lm, judge, utterances: list[dict], codes: list[Tensor],
                progress: Progress = None, by_word: bool | str = False,
                names: list[str] = ()) -> dict[str, Any]:
    """One model's hearing and speaking scores (reading aloud ``by_word`` or not; see
    :func:`read_aloud`; decoder-free against ``names`` too, see :func:`ceilings`), with a few
    samples of each."""
    heard = transcribe(model, codes, progress=progress)
    said_codes = read_aloud(model, [u["text"] for u in utterances], by_word=by_word)
    said = voiced_transcripts(lm, judge, said_codes, progress)
    samples = [{"text": u["text"], "heard": h, "said": s}
               for u, h, s in list(zip(utterances, heard, said))[:3]]
    out = {"hearing": score(utterances, heard), "speaking": score(utterances, said), "samples": samples}
    return _with_phonemes(out, lm, utterances, said_codes, names)


__all__ = ["ladder_utterances", "score", "transcribe", "read_aloud", "voiced_transcripts",
           "encode_wav", "encode_utterances", "judge_transcripts", "ceilings", "stage_rungs"]
