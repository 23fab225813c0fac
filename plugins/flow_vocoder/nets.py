"""Networks of the flow_vocoder decoder: ConvNeXt blocks, the flow estimator, the ISTFT vocoder.

Shapes: ``B`` batch, ``F`` mel frames, ``M`` mel bins, ``D`` width, ``T`` samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class ConvNeXtBlock(nn.Module):
    """``x + mlp(norm(dwconv(x)))`` over ``x[B,D,F]``; optional FiLM from ``cond[B,D]``."""

    def __init__(self, dim: int, dilation: int = 1, conditioned: bool = False, kernel: int = 7) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2 * dilation, dilation=dilation,
                                groups=dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=not conditioned)
        self.film = nn.Linear(dim, 2 * dim) if conditioned else None
        self.pw1, self.pw2 = nn.Linear(dim, 3 * dim), nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x: Tensor, cond: Tensor | None = None, stream: "ConvStream | None" = None) -> Tensor:
        """``x[B,D,F]`` -> ``[B,D,F]``; with ``stream``, ``x`` is a window of a longer sequence
        whose left context the stream holds (see :class:`ConvStream`)."""
        h = self.dwconv(x) if stream is None else stream(self.dwconv, x)
        h = self.norm(rearrange(h, "b d f -> b f d"))
        if self.film is not None:
            scale, shift = rearrange(self.film(cond), "b (two d) -> two b 1 d", two=2)
            h = h * (1 + scale) + shift
        h = self.gamma * self.pw2(F.gelu(self.pw1(h)))
        return x + rearrange(h, "b f d -> b d f")


class ConvStream:
    """Runs the depthwise convolutions of ConvNeXt blocks over a sequence that arrives in
    windows, keeping each convolution's left context, so that context is not computed again.

    A window is ``window`` positions (tokens; frame-rate tensors are ``upsample`` times longer)
    of which the first ``commit`` are final: the inputs of those become the left context of the
    next window; the rest (lookahead) are computed again with the next window. Past the window's
    right end the input is taken as zeros, as a whole-sequence convolution does past the end;
    so one window over a whole sequence gives exactly the whole-sequence result. ``tag`` tells
    apart the calls of one module within a window (the Euler steps of the flow)."""

    def __init__(self) -> None:
        self.left: dict[tuple, Tensor] = {}
        self.window, self.commit, self.tag = 1, 0, None

    def __call__(self, conv: nn.Conv1d, x: Tensor) -> Tensor:
        pad = conv.padding[0]
        key = (id(conv), self.tag)
        left = self.left.get(key)
        if left is None or left.shape[0] != x.shape[0]:
            left = x.new_zeros(x.shape[0], x.shape[1], pad)
        h = F.conv1d(torch.cat([left, x, x.new_zeros(x.shape[0], x.shape[1], pad)], -1), conv.weight,
                     conv.bias, dilation=conv.dilation, groups=conv.groups)
        final = self.commit * (x.shape[-1] // self.window)  # tokens, or frames at the mel rate
        if pad:
            self.left[key] = torch.cat([left, x[..., :final]], -1)[..., -pad:]
        return h


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of ``t[B]`` in [0, 1] -> ``[B,dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    angles = 1000 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], -1)


class SpeakerEncoder(nn.Module):
    """Reference mel ``[B,F,M]`` (+ ``mask[B,F]``) -> speaker embedding ``[B,E]`` (mean + std pooled)."""

    def __init__(self, n_mels: int, dim: int) -> None:
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(n_mels, dim), nn.GELU(), nn.Linear(dim, dim))
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.frame(mel)
        if mask is None:
            mask = torch.ones(mel.shape[:2], device=mel.device)
        w = mask.float()[..., None] / mask.float().sum(1).clamp(min=1)[:, None, None]
        mean = (h * w).sum(1)
        std = ((h - mean[:, None]).pow(2) * w).sum(1).clamp(min=1e-6).sqrt()
        return self.out(torch.cat([mean, std], -1))


class FlowEstimator(nn.Module):
    """Velocity ``v(x_t, t | tokens, prompt mel, speaker)`` over mel frames.

    ``x[B,F,M]`` noisy mel, ``mu[B,F,D]`` upsampled token features, ``prompt[B,F,M]`` known
    mel (zeros where unknown), ``known[B,F]``, ``t[B]``, ``speaker[B,D]`` -> ``v[B,F,M]``.
    """

    def __init__(self, n_mels: int, dim: int, layers: int) -> None:
        super().__init__()
        self.dim = dim
        self.inp = nn.Linear(2 * n_mels + 1 + dim, dim)
        self.time = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, 2 ** (i % 3), conditioned=True)
                                    for i in range(layers))
        self.out = nn.Linear(dim, n_mels)

    def forward(self, x: Tensor, t: Tensor, mu: Tensor, prompt: Tensor, known: Tensor,
                speaker: Tensor, stream: ConvStream | None = None) -> Tensor:
        h = self.inp(torch.cat([x, mu, prompt, known.float()[..., None]], -1))
        cond = self.time(timestep_embedding(t, self.dim)) + speaker
        h = rearrange(h, "b f d -> b d f")
        for block in self.blocks:
            h = block(h, cond, stream)
        return self.out(rearrange(h, "b d f -> b f d"))


class ISTFTVocoder(nn.Module):
    """Vocos-style vocoder: ``mel[B,F,M]`` -> ConvNeXt -> (log-magnitude, phase) -> ISTFT
    -> ``wav[B, F*hop]``. Frame ``i`` is centred on sample ``i*hop``."""

    def __init__(self, n_mels: int, dim: int, layers: int, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.embed = nn.Conv1d(n_mels, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(layers))
        self.head = nn.Linear(dim, n_fft + 2)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def receptive_frames(self) -> int:
        """Frames of mel context each side that influence one output frame."""
        return 3 + 3 * len(self.blocks) + self.n_fft // self.hop

    def forward(self, mel: Tensor) -> Tensor:
        h = self.embed(rearrange(mel, "b f m -> b m f"))
        h = rearrange(self.norm(rearrange(h, "b d f -> b f d")), "b f d -> b d f")
        for block in self.blocks:
            h = block(h)
        logmag, phase = rearrange(self.head(rearrange(h, "b d f -> b f d")),
                                  "b f (two k) -> two b k f", two=2)
        spec = torch.polar(logmag.clamp(max=8.0).exp(), phase)
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True,
                           length=mel.shape[1] * self.hop)


def multi_resolution_stft_loss(pred: Tensor, target: Tensor,
                               ffts: tuple[int, ...] = (256, 512, 1024)) -> Tensor:
    """Spectral convergence + log-magnitude L1, averaged over resolutions; ``[B,T]`` inputs."""
    total = pred.new_zeros(())
    for n_fft in ffts:
        window = torch.hann_window(n_fft, device=pred.device)
        mags = [torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs()
                .clamp(min=1e-5) for x in (pred, target)]
        sc = (mags[1] - mags[0]).norm() / mags[1].norm().clamp(min=1e-5)
        total = total + sc + (mags[0].log() - mags[1].log()).abs().mean()
    return total / len(ffts)
