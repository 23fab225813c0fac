"""A WAV file that grows while an answer is generated, valid at every moment.

Each :meth:`StreamingWav.append` rewrites the whole file atomically (write a temporary file,
then rename), so a reader that opens ``path`` at any time sees a complete 16-bit PCM WAV
holding every sample written so far, never a half-written header. Answers are seconds long,
so rewriting is cheap next to generating them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.data.audio import save_audio


class StreamingWav:
    """Append ``wav[T]`` chunks (float in [-1, 1]) to a mono WAV at ``sample_rate``."""

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".wav":
            from toolkit.errors import ToolkitError

            raise ToolkitError(f"{self.path}: streamed answers are written as .wav files")
        self.sample_rate = int(sample_rate)
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.writes = 0
        self._rewrite()

    def append(self, wav: torch.Tensor | np.ndarray) -> None:
        """Add samples ``wav[T]`` and publish the longer file."""
        data = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        data = data.reshape(-1).astype(np.float32)
        if data.size == 0:
            return
        self.chunks.append(data)
        self.samples += data.size
        self._rewrite()

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def audio(self) -> np.ndarray:
        """Every sample written so far, ``[T]`` float32."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)

    def _rewrite(self) -> None:
        save_audio(self.path, self.audio(), self.sample_rate)
        self.writes += 1


__all__ = ["StreamingWav"]
