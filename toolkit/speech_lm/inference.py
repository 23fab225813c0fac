"""Answering one question with a loaded :class:`toolkit.speech_lm.bundle.SpeechLM`, in any of the four
modes, optionally streaming the answer audio as it is generated.

Mode ``XY``: ``X`` is the question's modality, ``Y`` the answer's (``s`` speech, ``t`` text).
A spoken question is encoded by the speech tokenizer; a speech answer is generated as codes
by the speech branch (no text first) and synthesised by the decoder.

Streaming generates in chunks of ``chunk_tokens`` positions, each continuing the grid so far,
and synthesises each chunk's new codes right away (with the decoder's streaming form when it
has one). With greedy sampling the chunks give the same answer as one pass; with a
repetition penalty the penalty only sees the current chunk's tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.sampling import SamplingParams

MODES = ("s2s", "s2t", "t2s", "t2t")
AudioCallback = Callable[[Tensor], None]
"""``on_audio(wav[T])``: called with each new piece of answer audio, in order."""


@dataclass
class Answer:
    """The result of :func:`respond`: ``text`` (text answers: the text; speech answers: any text
    the model wrote besides the speech), ``codes[N]`` and ``wav[T]`` (speech answers) at
    ``sample_rate``, and timings: ``first_audio_s`` (start to first audio), ``compute_s``
    (start to end) and ``rtf`` (compute seconds per second of audio)."""

    mode: str
    text: str = ""
    codes: Tensor | None = None
    wav: Tensor | None = None
    sample_rate: int = 0
    first_audio_s: float | None = None
    compute_s: float = 0.0
    rtf: float | None = None
    new_tokens: int = 0
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return 0.0 if self.wav is None or not self.sample_rate else self.wav.numel() / self.sample_rate


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ToolkitError(f"unknown mode '{mode}'; modes: {', '.join(MODES)}")
    return mode


def question_codes(lm, question: Any) -> Tensor:
    """A spoken question (``wav[T]`` at the tokenizer's rate, or an audio file path) -> ``codes[L]``."""
    if lm.tokenizer is None:
        raise ToolkitError("this model has no speech tokenizer: spoken questions need one")
    if isinstance(question, (str, Path)):
        from toolkit.data.audio import load_audio

        question = load_audio(question, lm.tokenizer.sample_rate)
    wav = torch.as_tensor(question, dtype=torch.float32).reshape(1, -1)
    if wav.numel() == 0:
        raise ToolkitError("the spoken question holds no samples")
    with torch.no_grad():
        codes, lengths = lm.tokenizer.encode(wav, torch.tensor([wav.shape[1]]))
    return codes[0, : int(lengths[0])].cpu()


def prompt_grid(lm, mode: str, question: Any, system: str | None = None) -> Tensor:
    """The prompt ``ids[L,2]`` of a one-turn chat: an optional ``system`` prompt, the user's
    question (text, or speech codes for ``s*`` modes) and the assistant header (ending in
    ``sosp`` for ``*s`` modes)."""
    from toolkit.speech_lm.sequences import Turn, build_conversation

    check_mode(mode)
    if lm.text_tokenizer is None:
        raise ToolkitError("this model's trunk has no text tokenizer (needed for the chat frame)")
    if mode[0] == "s":
        codes = question if isinstance(question, Tensor) and question.dtype == torch.long \
            else question_codes(lm, question)
        turn = Turn("user", codes=codes)
    else:
        if not isinstance(question, str) or not question.strip():
            raise ToolkitError(f"mode {mode} needs the question as non-empty text")
        turn = Turn("user", text=question)
    out = "speech" if mode[2] == "s" else "text"
    turns = ([Turn("system", text=system)] if system else []) + [turn]
    return build_conversation(turns, lm.text_tokenizer, lm.tokens, train_roles=(),
                              generation_prompt=out)["input_ids"]


def generation_config(max_new_tokens: int = 200, text: SamplingParams | None = None,
                      speech: SamplingParams | None = None, min_new_tokens: int = 0):
    from toolkit.speech_lm.generate import GenerationConfig

    return GenerationConfig(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                            text=text or SamplingParams(), speech=speech or SamplingParams())


def speech_codes_of(ids: Tensor, tokens) -> Tensor:
    """The speech codes among grid positions ``ids[N,2]`` (``eosp`` and pads dropped)."""
    live = (ids[:, 0] == tokens.modality_pad) & (ids[:, 1] < tokens.speech_vocab_size)
    return ids[live, 1]


def respond(lm, question: Any, mode: str = "s2s", config=None, voice=None,
            on_audio: AudioCallback | None = None, chunk_tokens: int = 8,
            generator: torch.Generator | None = None) -> Answer:
    """Answer ``question`` in ``mode``.

    Args:
        question: text (``t*`` modes), or ``wav[T]`` / an audio path / ``codes[L]`` long (``s*``).
        config: a :class:`toolkit.speech_lm.GenerationConfig` (greedy, 200 tokens by default).
        voice: a decoder :class:`toolkit.contracts.VoicePrompt` or None (the decoder's default).
        on_audio: streaming callback for speech answers; None synthesises once at the end.
        chunk_tokens: positions generated between two audio pieces when streaming.
    """
    check_mode(mode)
    config = config or generation_config()
    start = time.perf_counter()
    grid = prompt_grid(lm, mode, question)
    if mode[2] == "t" or on_audio is None:
        answer = _respond_once(lm, grid, mode, config, voice, generator)
    else:
        answer = _respond_streaming(lm, grid, mode, config, voice, on_audio, chunk_tokens, generator, start)
    answer.compute_s = time.perf_counter() - start
    if answer.first_audio_s is None and answer.wav is not None:
        answer.first_audio_s = answer.compute_s
    if answer.audio_seconds > 0:
        answer.rtf = answer.compute_s / answer.audio_seconds
    return answer


def _respond_once(lm, grid: Tensor, mode: str, config, voice, generator) -> Answer:
    from toolkit.speech_lm.generate import generate

    out = generate(lm.model, [grid], config, generator)[0]
    answer = Answer(mode, text=lm.text_tokenizer.decode(out.text_ids), new_tokens=len(out.ids),
                    stopped=out.stopped)
    if mode[2] == "s":
        answer.codes = speech_codes_of(out.ids, lm.tokens)
        answer.wav, answer.sample_rate = synthesize(lm, answer.codes, voice)
    return answer


def synthesize(lm, codes: Tensor, voice=None) -> tuple[Tensor, int]:
    """Codes ``[N]`` -> ``(wav[T], sample_rate)`` with the model's decoder (empty for no codes)."""
    if lm.decoder is None:
        raise ToolkitError("this model has no decoder: speech answers need one")
    rate = int(lm.decoder.sample_rate)
    if codes.numel() == 0:
        return torch.zeros(0), rate
    with torch.no_grad():
        wav = lm.decoder.decode(codes.reshape(1, -1).to(_device(lm.decoder)), voice)
    return wav[0].float().cpu(), rate


def _device(module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _ChunkSynth:
    """Codes arriving in pieces -> audio pieces: the decoder's streaming form when it has
    one, otherwise decode everything so far and emit the samples not yet emitted."""

    def __init__(self, lm, voice) -> None:
        self.lm, self.voice = lm, voice
        self.codes: list[Tensor] = []
        self.emitted = 0
        try:
            self.stream = lm.decoder.stream_decoder(voice)
        except NotImplementedError:
            self.stream = None

    def push(self, codes: Tensor) -> Tensor:
        if codes.numel() == 0:
            return torch.zeros(0)
        self.codes.append(codes)
        if self.stream is not None:
            with torch.no_grad():
                return self.stream.push(codes.to(_device(self.lm.decoder))).reshape(-1).float().cpu()
        wav, _ = synthesize(self.lm, torch.cat(self.codes), self.voice)
        new = wav[self.emitted:]
        self.emitted = wav.numel()
        return new

    def flush(self) -> Tensor:
        if self.stream is not None:
            with torch.no_grad():
                return self.stream.flush().reshape(-1).float().cpu()
        return torch.zeros(0)


def _respond_streaming(lm, grid: Tensor, mode: str, config, voice, on_audio: AudioCallback,
                       chunk_tokens: int, generator, start: float) -> Answer:
    from dataclasses import replace

    from toolkit.speech_lm.generate import generate

    if lm.decoder is None:
        raise ToolkitError("this model has no decoder: speech answers need one")
    synth = _ChunkSynth(lm, voice)
    answer = Answer(mode, sample_rate=int(lm.decoder.sample_rate))
    pieces: list[Tensor] = []
    new_ids: list[Tensor] = []
    segment = 0
    while answer.new_tokens < config.max_new_tokens and not answer.stopped:
        step = min(chunk_tokens, config.max_new_tokens - answer.new_tokens)
        chunk_config = replace(config, max_new_tokens=step,
                               min_new_tokens=max(0, config.min_new_tokens - segment))
        out = generate(lm.model, [grid], chunk_config, generator)[0]
        if len(out.ids) == 0:
            break
        grid = torch.cat([grid, out.ids])
        new_ids.append(out.ids)
        answer.new_tokens += len(out.ids)
        answer.stopped = out.stopped
        codes = speech_codes_of(out.ids, lm.tokens)
        segment = 0 if bool((out.ids[:, 1] == lm.tokens.eosp).any()) else segment + int(codes.numel())
        _emit(synth.push(codes), answer, pieces, on_audio, start)
    _emit(synth.flush(), answer, pieces, on_audio, start)
    ids = torch.cat(new_ids) if new_ids else torch.empty(0, 2, dtype=torch.long)
    text_ids = [int(t) for t in ids[ids[:, 0] != lm.tokens.modality_pad, 0]
                if int(t) != lm.tokens.sosp and int(t) not in lm.text_tokenizer.eos_ids]
    answer.text = lm.text_tokenizer.decode(text_ids)
    answer.codes = speech_codes_of(ids, lm.tokens)
    answer.wav = torch.cat(pieces) if pieces else torch.zeros(0)
    return answer


def _emit(wav: Tensor, answer: Answer, pieces: list[Tensor], on_audio: AudioCallback,
          start: float) -> None:
    if wav.numel() == 0:
        return
    if answer.first_audio_s is None:
        answer.first_audio_s = time.perf_counter() - start
    pieces.append(wav)
    on_audio(wav)


__all__ = ["MODES", "Answer", "respond", "prompt_grid", "question_codes", "synthesize",
           "generation_config", "speech_codes_of", "check_mode"]
