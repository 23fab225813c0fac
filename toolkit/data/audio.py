"""Audio file input/output with one-line errors for every kind of bad file.

Reading uses ``soundfile`` (``torchaudio.load`` needs torchcodec + ffmpeg). Samples come back
as ``float32`` mono at the requested rate: several channels are averaged, another sample rate
is resampled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from toolkit.audio_features import resample
from toolkit.errors import ToolkitError
from toolkit.io import atomic_write


class AudioError(ToolkitError):
    """A file that cannot be used as audio; ``reason`` is a short machine-readable kind."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {detail}")


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(frames, sample_rate, channels)`` from the header, raising :class:`AudioError`."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, "unreadable", f"not a readable audio file ({_short(err)})") from None
    return int(info.frames), int(info.samplerate), int(info.channels)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise AudioError(path, "missing", "audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "zero_bytes", "audio file is empty (0 bytes)")


def _short(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__


def load_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
    """Read ``path`` as ``float32`` mono ``wav[T]`` at ``sample_rate`` (downmixed, resampled).

    Raises :class:`AudioError` naming the file when it is missing, empty, not audio,
    corrupt or truncated, holds no samples or non-finite ones, or is longer than
    ``max_seconds``.
    """
    path = Path(path)
    frames, rate, _ = audio_info(path)
    if frames <= 0:
        raise AudioError(path, "empty", "audio file holds no samples")
    if max_seconds is not None and frames / rate > max_seconds:
        raise AudioError(path, "too_long", f"audio is {frames / rate:.1f} s, longer than the "
                                           f"limit of {max_seconds:g} s")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, "corrupt", f"corrupt or truncated audio ({_short(err)})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "empty", "audio file holds no samples")
    if data.shape[0] < frames * 0.99:
        raise AudioError(path, "truncated", f"truncated audio: header says {frames} frames, "
                                            f"file holds {data.shape[0]}")
    if path.suffix.lower() == ".wav" and _wav_missing_bytes(path) > 0:
        raise AudioError(path, "truncated", "truncated audio: the WAV header declares more "
                                            "sample data than the file holds")
    if not np.isfinite(data).all():
        raise AudioError(path, "non_finite", "audio holds NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))
    return resample(wav, rate, sample_rate, cached_kernel=True)


def _wav_missing_bytes(path: Path) -> int:
    """Bytes the WAV ``data`` chunk declares beyond the end of the file (0 when complete).

    libsndfile silently reads a truncated WAV as a shorter one, so we check the header.
    Streaming writers (``espeak-ng --stdout``) declare an unknown size near 2**31 or 2**32;
    such sizes are not taken as truncation.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return 0
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return 0
            name, length = chunk[:4], int.from_bytes(chunk[4:], "little")
            if name == b"data":
                if length >= 0x7FFF0000 or head[:4] == b"RF64":
                    return 0
                return max(0, fh.tell() + length - size)
            fh.seek(length + (length & 1), 1)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads. File workers that each resample use 1:
    on a busy machine several threads per small convolution made resampling 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_audio(path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write mono ``wav[T]`` (float in [-1, 1]) as 16-bit FLAC or WAV (by suffix), atomically.

    The bytes depend only on the samples, so the same input gives the same file.
    """
    path = Path(path)
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    pcm = np.clip(np.round(data.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ToolkitError(f"{path}: audio must be written as .flac or .wav")
    return atomic_write(path, lambda tmp: sf.write(str(tmp), pcm, sample_rate, format=fmt,
                                                   subtype="PCM_16"))


__all__ = ["AudioError", "audio_info", "load_audio", "save_audio"]
