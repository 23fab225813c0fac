"""A pretrained ``WhisperVQEncoder`` folder (MOSS-Speech-Codec, THUDM/glm-4-voice-tokenizer):
``config.json`` (``WhisperVQConfig`` fields) + safetensors, read without running its code.

Semantics implemented (those of GLM-4-Voice's ``speech_tokenizer`` modeling and
``extract_speech_token``), for a clip ``wav[T]`` at 16 kHz:

1. The clip is cut into 30 s windows; each window is featurised alone like Whisper's feature
   extractor with ``padding="longest", pad_to_multiple_of=1280``: zero-pad the samples to a
   multiple of ``conv strides (2) * pooling_kernel_size (4) * hop (160)``; periodic Hann
   window of 400, centred reflect-padded STFT, hop 160, power spectrum, the last frame
   dropped; Slaney mel filters (``num_mel_bins``, 0-8 kHz); ``log10(max(x, 1e-10))``,
   floored at ``max - 8``, then ``(x + 4) / 4``. Frame ``f`` is real when ``f * 160 <
   samples``.
2. ``conv1`` (k3, s1) and ``conv2`` (k3, s2), each causal (left-padded by 2) with GELU, then
   ``+ embed_positions[:F/2]``.
3. Pre-LayerNorm Whisper layers (``k_proj`` without bias, q scaled by ``head_dim ** -0.5``,
   GELU MLP) under a block-causal mask: a frame sees every earlier frame and its whole block
   of ``quantize_causal_block_size`` frames, and only real frames (``mask[::2]``); full
   attention when ``quantize_causal_encoder`` is false.
4. After layer ``pooling_position``: average pool by ``pooling_kernel_size`` (right
   zero-padded to a multiple), mask ``[::kernel]``, block size ``// kernel``.
5. After layer ``quantize_position``: the index of the nearest ``codebook`` row (squared
   L2, first index on ties) is the code; the codes of real positions are kept.

So one second gives 13 codes (16000 samples -> 16640 padded -> 104 frames -> 52 -> 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
from einops import rearrange
from torch import Tensor, nn

from toolkit.errors import ToolkitError
from toolkit.io import read_json

HOP, N_FFT, RATE, WINDOW_SECONDS = 160, 400, 16000, 30


@dataclass
class VQConfig:
    d_model: int
    layers: int
    heads: int
    ffn: int
    n_mels: int
    max_positions: int
    pool: int
    pooling_position: int
    quantize_position: int
    codebook_size: int
    block: int
    causal_attention: bool


def read_vq_config(path: Path) -> VQConfig:
    """The ``WhisperVQConfig`` fields of ``config.json``; a missing one is a one-line error."""
    raw = read_json(path)
    need = ("d_model", "encoder_attention_heads", "encoder_ffn_dim", "num_mel_bins",
            "max_source_positions", "pooling_kernel_size", "quantize_position", "quantize_vocab_size")
    for key in need:
        if not isinstance(raw.get(key), int):
            raise ToolkitError(f"{path}: missing integer '{key}' (not a WhisperVQEncoder config)")
    if raw.get("encoder_causal_convolution") is False or raw.get("pooling_type", "avg") != "avg":
        raise ToolkitError(f"{path}: only causal convolutions and average pooling are supported")
    q = raw["quantize_position"]
    return VQConfig(raw["d_model"], q, raw["encoder_attention_heads"], raw["encoder_ffn_dim"],
                    raw["num_mel_bins"], raw["max_source_positions"], raw["pooling_kernel_size"],
                    int(raw.get("pooling_position") or q), q, raw["quantize_vocab_size"],
                    int(raw.get("quantize_causal_block_size") or 10**9),
                    bool(raw.get("quantize_causal_encoder", True)))


class CausalConv(nn.Conv1d):
    """``x[B, C, F]`` -> conv of the left-padded input (no look-ahead)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.dilation[0] * (self.kernel_size[0] - 1), 0)))


class EncoderLayer(nn.Module):
    """A pre-LayerNorm Whisper encoder layer (Hugging Face parameter names)."""

    def __init__(self, c: VQConfig) -> None:
        super().__init__()
        d = c.d_model
        self.heads = c.heads
        self.self_attn = nn.Module()
        self.self_attn.q_proj, self.self_attn.v_proj = nn.Linear(d, d), nn.Linear(d, d)
        self.self_attn.k_proj = nn.Linear(d, d, bias=False)
        self.self_attn.out_proj = nn.Linear(d, d)
        self.self_attn_layer_norm, self.final_layer_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, c.ffn), nn.Linear(c.ffn, d)

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        """``x[B, L, D]``, ``allowed[B, L, L]`` bool (query, key) -> ``[B, L, D]``."""
        a = self.self_attn
        h = self.self_attn_layer_norm(x)
        q, k, v = (rearrange(p(h), "b l (h d) -> b h l d", h=self.heads) for p in (a.q_proj, a.k_proj, a.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])
        x = x + a.out_proj(rearrange(out, "b h l d -> b l (h d)"))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


def block_causal(mask: Tensor, block: int, causal: bool) -> Tensor:
    """``mask[B, L]`` (1 = real) -> ``allowed[B, L, L]``: earlier frames or the same block,
    real keys only (``causal=False``: every real key)."""
    n = mask.shape[1]
    idx = torch.arange(n, device=mask.device)
    allowed = (idx[None, :] <= idx[:, None]) | (idx[None, :] // block == idx[:, None] // block)
    if not causal:
        allowed = torch.ones_like(allowed)
    allowed = allowed[None] & mask.bool()[:, None, :]
    return allowed | ~allowed.any(-1, keepdim=True)  # a query with no real key attends to all


class VQEncoder(nn.Module):
    """The encoder up to the quantizer; state-dict names are the checkpoint's without
    ``model.encoder.``."""

    def __init__(self, c: VQConfig) -> None:
        super().__init__()
        self.c = c
        self.conv1 = CausalConv(c.n_mels, c.d_model, 3)
        self.conv2 = CausalConv(c.d_model, c.d_model, 3, stride=2)
        self.embed_positions = nn.Embedding(c.max_positions, c.d_model)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.quantize_position))
        self.codebook = nn.Embedding(c.codebook_size, c.d_model)
        window = torch.hann_window(N_FFT, periodic=True)
        fb = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, RATE / 2, c.n_mels, RATE,
                                                   norm="slaney", mel_scale="slaney")
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_filters", fb, persistent=False)

    def log_mel(self, wav: Tensor) -> Tensor:
        """``wav[T]`` (``T`` a multiple of the hop) -> ``[n_mels, T / 160]`` Whisper log-mel."""
        spec = torch.stft(wav.float(), N_FFT, HOP, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True).abs() ** 2
        mel = (spec[:, :-1].T @ self.mel_filters).T
        logm = torch.log10(mel.clamp(min=1e-10))
        logm = torch.maximum(logm, logm.max() - 8.0)
        return (logm + 4.0) / 4.0

    def window_codes(self, wav: Tensor) -> Tensor:
        """One window ``wav[T]`` (<= 30 s) -> ``codes[ceil(T / 1280)]`` long."""
        c = self.c
        stride = 2 * c.pool * HOP
        n = wav.shape[0]
        padded = F.pad(wav, (0, -n % stride))
        mel = self.log_mel(padded)[None].to(self.conv1.weight.dtype)
        mask = (torch.arange(mel.shape[-1], device=wav.device) * HOP < n)[None]
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel))))
        x = rearrange(x, "b d f -> b f d")
        x = x + self.embed_positions.weight[: x.shape[1]]
        mask = mask[:, ::2]
        block = c.block
        allowed = block_causal(mask, block, c.causal_attention)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x, allowed)
            if i == c.pooling_position:
                x = F.pad(rearrange(x, "b l d -> b d l"), (0, -x.shape[1] % c.pool))
                x = rearrange(F.avg_pool1d(x, c.pool), "b d l -> b l d")
                mask, block = mask[:, :: c.pool], max(1, block // c.pool)
                allowed = block_causal(mask, block, c.causal_attention)
        dist = (x.float() ** 2).sum(-1, keepdim=True) - 2 * x.float() @ self.codebook.weight.float().T \
            + (self.codebook.weight.float() ** 2).sum(-1)
        return dist.argmin(-1)[0][mask[0]]

    def codes(self, wav: Tensor) -> Tensor:
        """A clip ``wav[T]`` at 16 kHz -> ``codes[L]``, window by window (30 s each)."""
        size = WINDOW_SECONDS * RATE
        pieces = [self.window_codes(wav[s: s + size]) for s in range(0, wav.shape[0], size)]
        return torch.cat(pieces) if pieces else wav.new_zeros(0, dtype=torch.long)


@torch.no_grad()
def encode_batch(enc: VQEncoder, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``wav[B, T]`` at 16 kHz, ``lengths[B]`` -> ``codes[B, L]`` (0 past a length), ``code_lengths[B]``."""
    if lengths is None:
        lengths = torch.full((wav.shape[0],), wav.shape[1], device=wav.device)
    rows = [enc.codes(wav[i, : int(lengths[i])]) for i in range(wav.shape[0])]
    counts = torch.tensor([len(r) for r in rows], device=wav.device)
    out = torch.zeros(len(rows), int(counts.max()) if rows else 0, dtype=torch.long, device=wav.device)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, counts


def load_vq_encoder(folder: str | Path) -> VQEncoder:
    """Build and load a ``WhisperVQEncoder`` folder (single ``model.safetensors`` or a sharded
    index; keys ``model.encoder.*`` or bare). Decoder and unused layers are skipped."""
    from plugins.llama.checkpoint import read_safetensors

    folder = Path(folder)
    c = read_vq_config(folder / "config.json")
    index = folder / "model.safetensors.index.json"
    files = sorted(set(read_json(index)["weight_map"].values())) if index.is_file() else ["model.safetensors"]
    tensors, where = {}, {}
    for name in files:
        part = read_safetensors(folder / name)
        tensors.update(part)
        where.update(dict.fromkeys(part, folder / name))
    enc = VQEncoder(c)
    expected = enc.state_dict()
    state = {}
    for full, t in tensors.items():
        key = full.removeprefix("model.encoder.")
        if key not in expected or (key.startswith("layers.") and int(key.split(".")[1]) >= c.quantize_position):
            continue
        if t.shape != expected[key].shape:
            raise ToolkitError(f"{where[full]}: tensor '{full}' has shape {list(t.shape)}, "
                               f"expected {list(expected[key].shape)}")
        state[key] = t
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ToolkitError(f"{folder / files[0]}: missing tensor 'model.encoder.{missing[0]}'")
    enc.load_state_dict({k: v.float() for k, v in state.items()})
    return enc.eval()


__all__ = ["VQConfig", "VQEncoder", "load_vq_encoder", "encode_batch", "read_vq_config", "block_causal"]
