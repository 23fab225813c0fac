"""Audio features shared by speech plugins: causal log-mel, resampling, waveform checks.

Shapes: ``B`` batch, ``T`` samples, ``F`` frames, ``M`` mel bins.

The log-mel here is *causal*: frame ``i`` covers samples ``[i*hop - (n_fft - hop), (i+1)*hop)``
(zeros before the start), so a stream can emit a frame as soon as its last hop arrives, and
``T // hop`` frames come out of ``T`` samples whatever way the samples were chunked. The
normalisation is a fixed floor and scale (no per-utterance max), also for causality.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from einops import rearrange
from torch import Tensor, nn

from toolkit.errors import ToolkitError


@dataclass
class MelConfig:
    """Log-mel settings; the defaults are Whisper's (16 kHz, 25 ms window, 10 ms hop, 80 bins)."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    log_floor: float = -8.0
    """log10 floor, applied after clamping power at 1e-10."""
    offset: float = 4.0
    scale: float = 4.0
    """Features are ``(log10(power) + offset) / scale`` (Whisper's normalisation)."""
    center: bool = False
    """Centre frame ``i`` on sample ``i*hop`` (zeros around the signal; not causal: reads
    ``n_fft/2`` samples ahead). Vocoders use this; tokenizers keep the causal framing."""


class LogMel(nn.Module):
    """Causal log-mel spectrogram: ``wav[B,T] -> mel[B, T // hop, n_mels]``."""

    def __init__(self, config: MelConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MelConfig()
        fbank = AF.melscale_fbanks(c.n_fft // 2 + 1, c.f_min, c.f_max or c.sample_rate / 2,
                                   c.n_mels, c.sample_rate, norm="slaney", mel_scale="slaney")
        self.register_buffer("fbank", fbank, persistent=False)
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)

    @property
    def context(self) -> int:
        """Samples before a frame's hop that the frame also reads (``n_fft - hop``)."""
        return self.config.n_fft - self.config.hop

    def forward(self, wav: Tensor) -> Tensor:
        """``wav[B,T]`` -> ``mel[B, T // hop, M]`` (zeros are assumed before the start)."""
        if self.config.center:
            half = self.config.n_fft // 2
            n = wav.shape[-1] // self.config.hop
            return self.frames(F.pad(wav, (half, half)))[:, :n]
        return self.frames(F.pad(wav, (self.context, 0)))

    def frames(self, padded: Tensor) -> Tensor:
        """Mel of ``padded[B, context + n*hop (+ rest)]`` whose first ``context`` samples are
        history -> ``mel[B, n, M]``; used by streams that carry the history themselves."""
        c = self.config
        n = (padded.shape[-1] - self.context) // c.hop
        if n <= 0:
            return padded.new_zeros(padded.shape[0], 0, c.n_mels)
        padded = padded[..., : self.context + n * c.hop]
        spec = torch.stft(padded.float(), c.n_fft, c.hop, window=self.window, center=False,
                          return_complex=True)
        power = spec.abs().pow(2)
        mel = rearrange(power, "b f t -> b t f") @ self.fbank
        logmel = torch.log10(mel.clamp(min=1e-10)).clamp(min=c.log_floor)
        return (logmel + c.offset) / c.scale

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Frames produced from ``lengths[B]`` samples."""
        return torch.div(lengths, self.config.hop, rounding_mode="floor")


def resample(wav: Tensor, orig_rate: int, new_rate: int, cached_kernel: bool = False) -> Tensor:
    """``wav[..., T]`` from ``orig_rate`` to ``new_rate`` (band-limited sinc).

    By default torchaudio's ``functional.resample``: the kernel is built on every call, in
    ``wav``'s dtype on its device (any device, autograd works). ``cached_kernel=True`` reuses one
    ``transforms.Resample`` per pair of rates (CPU float32 input, no autograd), whose kernel is
    built in float64 and stored as float32: much faster for many files, and not the same bits
    (up to ~1e-5 apart). Audio files read by :func:`toolkit.data.audio.load_audio` and speech
    synthesised by :mod:`toolkit.data.synth` always use the cached kernel, so their samples (and
    the token caches and training data made from them) do not depend on this choice elsewhere.
    """
    if orig_rate == new_rate:
        return wav
    if cached_kernel:
        with torch.no_grad():
            return _resampler(int(orig_rate), int(new_rate))(wav)
    return AF.resample(wav, orig_rate, new_rate)


@lru_cache(maxsize=16)
def _resampler(orig_rate: int, new_rate: int) -> nn.Module:
    """A cached ``torchaudio.transforms.Resample`` (the sinc kernel of ``functional.resample``,
    computed in float64 once instead of in the input's dtype on every call)."""
    import torchaudio.transforms as AT  # only needed here

    return AT.Resample(orig_rate, new_rate)


def prepare_waveform(wav: Tensor, rate: int, target_rate: int, where: str = "audio") -> Tensor:
    """Make any input a mono float ``wav[T]`` at ``target_rate``.

    Accepts ``[T]``, ``[C,T]`` or ``[T,C]`` (C <= 8 channels, downmixed by averaging).
    Raises :class:`ToolkitError` for empty input or non-finite samples.
    """
    wav = torch.as_tensor(wav)
    if wav.dim() == 2:
        channel_dim = 0 if wav.shape[0] <= 8 and wav.shape[0] < wav.shape[1] else 1
        wav = wav.float().mean(dim=channel_dim)
    if wav.dim() != 1:
        raise ToolkitError(f"{where}: expected mono or multichannel audio, got shape {tuple(wav.shape)}")
    if wav.numel() == 0:
        raise ToolkitError(f"{where}: audio is empty")
    wav = wav.float()
    if not torch.isfinite(wav).all():
        raise ToolkitError(f"{where}: audio has non-finite samples (NaN or inf)")
    return resample(wav, rate, target_rate)


def mel_for_vocoder(sample_rate: int = 16000, hop: int = 160, n_mels: int = 80,
                    n_fft: int = 640) -> LogMel:
    """The centred log10-mel a decoder predicts and a vocoder inverts (power floor 1e-5)."""
    return LogMel(MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop=hop, n_mels=n_mels,
                            log_floor=-5.0, offset=0.0, scale=1.0, center=True))


__all__ = ["MelConfig", "LogMel", "resample", "prepare_waveform", "mel_for_vocoder"]
