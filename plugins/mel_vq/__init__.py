"""``mel_vq``: a small from-scratch causal conv encoder over log-mel with one VQ codebook.

wav (16 kHz) -> causal log-mel (100 fps) -> 4 frames stacked per step (25 tokens/s) ->
causal dilated conv stack -> VQ. Trained by reconstructing the log-mel from the quantised
sequence with a (non-causal, training-only) conv decoder. Streaming encodes block by block
with per-layer conv histories, the same steps as offline :meth:`MelVQTokenizer.encode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from toolkit.registry import API_VERSION
from toolkit.audio_features import LogMel, MelConfig
from toolkit.contracts import SpeechTokenizer, StreamingEncoder
from toolkit.streaming import BlockStream, SingleStream


@dataclass
class MelVQParams:
    n_mels: int = 80
    stack: int = 4
    """Mel frames (100 fps) per token: 4 -> 25 tokens/s."""
    channels: int = 256
    layers: int = 4
    """Causal conv layers (kernel 3, dilations 1, 2, 4, ...)."""
    codebook_size: int = 1024
    codebook_dim: int | None = 32
    ema_decay: float = 0.99
    commitment: float = 0.25
    dead_code_threshold: float = 2.0
    kmeans_init: bool = True
    block_tokens: int = 4
    """Tokens per streaming block."""


class CausalConv(nn.Module):
    """Residual ``x + conv(gelu(x))`` with left padding; ``step`` carries the history."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.context = 2 * dilation
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation)

    def forward(self, x: Tensor, history: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x[B,C,L]``, ``history[B,C,context]`` (zeros if None) -> (``y[B,C,L]``, new history)."""
        if history is None:
            history = x.new_zeros(x.shape[0], x.shape[1], self.context)
        padded = torch.cat([history, x], -1)
        y = x + self.conv(F.gelu(padded))
        return y, padded[..., -self.context:]


class MelVQTokenizer(SpeechTokenizer):
    """Speech -> codes at ``100 / stack`` Hz. ``encode(wav[B,T], lengths) -> codes[B,L], lengths``."""

    Params = MelVQParams
    api_version = API_VERSION
    sample_rate = 16000

    def __init__(self, params: MelVQParams) -> None:
        super().__init__()
        self.params = p = params
        self.mel = LogMel(MelConfig(n_mels=p.n_mels))
        self.inp = nn.Linear(p.n_mels * p.stack, p.channels)
        self.convs = nn.ModuleList(CausalConv(p.channels, 2 ** i) for i in range(p.layers))
        # projections done here: the library's own (codebook_dim) breaks with a mask
        vq_dim = p.codebook_dim or p.channels
        self.proj_in = nn.Linear(p.channels, vq_dim) if p.codebook_dim else nn.Identity()
        self.proj_out = nn.Linear(vq_dim, p.channels) if p.codebook_dim else nn.Identity()
        self.vq = VectorQuantize(vq_dim, p.codebook_size,
                                 decay=p.ema_decay, commitment_weight=p.commitment,
                                 kmeans_init=p.kmeans_init,
                                 threshold_ema_dead_code=p.dead_code_threshold)
        self.recon = nn.Sequential(
            nn.Conv1d(p.channels, p.channels, 5, padding=2), nn.GELU(),
            nn.Conv1d(p.channels, p.channels, 5, padding=2), nn.GELU(),
            nn.Conv1d(p.channels, p.n_mels * p.stack, 1))
        self.frame_rate = 100.0 / p.stack
        self.codebook_size = p.codebook_size
        self.samples_per_token = p.stack * self.mel.config.hop

    def code_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths + self.samples_per_token - 1, self.samples_per_token,
                         rounding_mode="floor")

    def features(self, mel: Tensor, histories: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
        """``mel[B, L*stack, M]`` -> pre-quantisation ``z[B,L,C]`` and the conv histories."""
        x = rearrange(self.inp(rearrange(mel, "b (l s) m -> b l (s m)", s=self.params.stack)),
                      "b l c -> b c l")
        new = []
        for i, conv in enumerate(self.convs):
            x, h = conv(x, histories[i] if histories else None)
            new.append(h)
        return rearrange(x, "b c l -> b l c"), new

    @torch.no_grad()
    def code_vectors(self) -> Tensor:
        """The codebook in feature space ``[codebook_size, D]`` (what each code stands for)."""
        return self.proj_out(self.vq.codebook.reshape(self.codebook_size, -1))

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        x = self.proj_in(z)
        book = self.vq.codebook.reshape(-1, x.shape[-1])
        return (x.pow(2).sum(-1, keepdim=True) - 2 * x @ book.T + book.pow(2).sum(-1)).argmin(-1)

    @torch.no_grad()
    def encode(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``wav[B,T]`` -> ``codes[B, ceil(T / samples_per_token)]``, ``code_lengths[B]``."""
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], device=wav.device)
        stream = _MelStream(self, wav.shape[0], wav.device)
        return torch.cat([stream.push(wav), stream.flush()], 1), self.code_lengths(lengths)

    def stream_encoder(self) -> StreamingEncoder:
        return SingleStream(_MelStream(self, 1, next(self.parameters()).device))

    def training_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        wav, lengths = batch["wav"].float(), batch["lengths"]
        n = math.ceil(wav.shape[1] / self.samples_per_token)
        mel = self.mel(F.pad(wav, (0, n * self.samples_per_token - wav.shape[1])))
        z, _ = self.features(mel)
        valid = torch.arange(n, device=wav.device)[None] < self.code_lengths(lengths)[:, None]
        quantized, indices, commit = self.vq(self.proj_in(z), mask=valid)
        quantized = self.proj_out(quantized)
        recon = rearrange(self.recon(rearrange(quantized, "b l c -> b c l")),
                          "b (s m) l -> b (l s) m", s=self.params.stack)
        frame_valid = self.mel.num_frames(lengths)[:, None] > torch.arange(mel.shape[1])[None]
        err = (recon - mel).abs().mean(-1)
        l1 = (err * frame_valid).sum() / frame_valid.sum().clamp(min=1)
        counts = torch.bincount(indices[valid].flatten(), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp(min=1)
        perplexity = (-(probs * probs.clamp(min=1e-10).log()).sum()).exp()
        return {"loss": l1 + commit.sum(), "mel_l1": l1.detach(), "commit": commit.sum().detach(),
                "perplexity": perplexity, "usage": (counts > 0).float().mean()}


class _MelStream(BlockStream):
    """Block-by-block encoding of a batch; ``encode`` and the streaming encoder both use it."""

    def __init__(self, tok: MelVQTokenizer, batch: int, device: torch.device) -> None:
        self.tok = tok
        super().__init__(batch, tok.samples_per_token * tok.params.block_tokens,
                         tok.samples_per_token, device)

    def reset(self) -> None:
        self.history = torch.zeros(self.batch, self.tok.mel.context, device=self.device)
        self.conv_history: list[Tensor] | None = None

    @torch.no_grad()
    def run(self, samples: Tensor) -> Tensor:
        mel = self.tok.mel.frames(torch.cat([self.history, samples], -1))
        z, self.conv_history = self.tok.features(mel, self.conv_history)
        self.history = samples[:, -self.tok.mel.context:]
        return self.tok.nearest(z)


__all__ = ["MelVQTokenizer", "MelVQParams"]
