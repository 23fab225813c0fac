"""A Whisper encoder / decoder in plain PyTorch, with a block-causal streaming encoder.

Parameter names follow Hugging Face's ``WhisperModel`` (without ``model.``), so weights from
:func:`.ct2.load_whisper_weights` load with ``load_state_dict``.

Block-causal mode: the convolutions are padded on the left only, and an encoder frame attends
to every frame of its own block and of earlier blocks. :meth:`WhisperEncoder.step` runs one
block with a :class:`EncoderState` (conv histories and per-layer keys/values), which is how
both the streaming and the offline inference paths encode, so they agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        return rearrange(x, "b l (h d) -> b h l d", h=self.heads)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x[B,L,D]`` queries over ``k, v[B,H,S,d]``; ``mask[.., L, S]`` bool, True = attend."""
        out = F.scaled_dot_product_attention(self.split(self.q_proj(x)), k, v, attn_mask=mask)
        return self.out_proj(rearrange(out, "b h l d -> b l (h d)"))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None,
                past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x[B,L,D]``; ``past`` keys/values of earlier frames -> (x, keys/values incl. x)."""
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        x = x + self.self_attn(h, k, v, mask)
        x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return x, (k, v)


@dataclass
class EncoderState:
    """History of a block-causal encoder: last mel frames, last conv1 outputs, keys/values."""

    mel: Tensor
    conv1: Tensor
    kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)
    position: int = 0


class WhisperEncoder(nn.Module):
    """``mel[B,F,M]`` at 100 frames/s -> ``h[B,F/2,D]`` at 50 frames/s."""

    def __init__(self, n_mels: int, dim: int, heads: int, ffn: int, layers: int,
                 max_positions: int = 1500, causal: bool = True, block_frames: int = 4) -> None:
        super().__init__()
        self.causal, self.block_frames = causal, block_frames
        self.conv1 = nn.Conv1d(n_mels, dim, 3, padding=0 if causal else 1)
        self.conv2 = nn.Conv1d(dim, dim, 3, stride=2, padding=0 if causal else 1)
        self.embed_positions = nn.Embedding(max_positions, dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(dim)

    def convs(self, mel: Tensor, mel_hist: Tensor | None = None,
              conv1_hist: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Front-end convolutions -> (``x[B,F/2,D]``, mel history, conv1 history) (causal:
        two frames of history each, zeros at the start)."""
        x = rearrange(mel, "b f m -> b m f")
        if not self.causal:
            x = F.gelu(self.conv2(F.gelu(self.conv1(x))))
            return rearrange(x, "b d f -> b f d"), x, x
        if mel_hist is None:
            mel_hist = x.new_zeros(x.shape[0], x.shape[1], 2)
        x = torch.cat([mel_hist, x], -1)
        c1 = F.gelu(self.conv1(x))
        if conv1_hist is None:
            conv1_hist = c1.new_zeros(c1.shape[0], c1.shape[1], 2)
        c1 = torch.cat([conv1_hist, c1], -1)
        out = F.gelu(self.conv2(c1))
        return rearrange(out, "b d f -> b f d"), x[..., -2:], c1[..., -2:]

    def block_mask(self, n: int, device: torch.device) -> Tensor | None:
        """``[n,n]`` bool: frame i sees frame j when j's block is not after i's."""
        if not self.causal:
            return None
        block = torch.arange(n, device=device) // self.block_frames
        return block[None, :] <= block[:, None]

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Whole-sequence pass (training): ``mel[B,F,M]`` -> ``h[B,ceil(F/2),D]``."""
        x, _, _ = self.convs(mel)
        x = x + self.embed_positions.weight[: x.shape[1]]
        mask = self.block_mask(x.shape[1], x.device)
        if lengths is not None:
            valid = torch.arange(x.shape[1], device=x.device)[None] < (lengths[:, None] + 1) // 2
            key_mask = valid[:, None, None, :]
            mask = key_mask if mask is None else mask & key_mask
        for layer in self.layers:
            x, _ = layer(x, mask)
        return self.layer_norm(x)

    def init_state(self, batch: int, device: torch.device) -> EncoderState:
        dim, n_mels = self.conv1.out_channels, self.conv1.in_channels
        return EncoderState(torch.zeros(batch, n_mels, 2, device=device),
                            torch.zeros(batch, dim, 2, device=device), [None] * len(self.layers))

    def step(self, mel: Tensor, state: EncoderState) -> Tensor:
        """One block (or a final partial block): ``mel[B, 2n, M]`` -> ``h[B,n,D]``; updates state."""
        x, state.mel, state.conv1 = self.convs(mel, state.mel, state.conv1)
        n = x.shape[1]
        x = x + self.embed_positions.weight[state.position: state.position + n]
        state.position += n
        for i, layer in enumerate(self.layers):
            x, state.kv[i] = layer(x, None, state.kv[i])
        return self.layer_norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_attn = Attention(dim, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, memory: Tensor, self_mask: Tensor, memory_mask: Tensor | None) -> Tensor:
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn(h, *self.self_attn.keys_values(h), self_mask)
        h = self.encoder_attn_layer_norm(x)
        x = x + self.encoder_attn(h, *self.encoder_attn.keys_values(memory), memory_mask)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperDecoder(nn.Module):
    """Text decoder: ``tokens[B,N]`` over ``memory[B,S,D]`` -> ``logits[B,N,V]`` (tied head)."""

    def __init__(self, vocab: int, dim: int, heads: int, ffn: int, layers: int,
                 max_positions: int = 448) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.embed_positions = nn.Embedding(max_positions, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor, memory: Tensor, memory_lengths: Tensor | None = None) -> Tensor:
        n = tokens.shape[1]
        x = self.embed_tokens(tokens) + self.embed_positions.weight[:n]
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        memory_mask = None
        if memory_lengths is not None:
            memory_mask = (torch.arange(memory.shape[1], device=x.device)[None]
                           < memory_lengths[:, None])[:, None, None, :]
        for layer in self.layers:
            x = layer(x, memory, causal, memory_mask)
        return self.layer_norm(x) @ self.embed_tokens.weight.T

    @torch.no_grad()
    def greedy(self, prefix: list[int], memory: Tensor, eot: int, max_tokens: int = 100,
               vocab_limit: int | None = None) -> list[int]:
        """Greedy decoding of one sequence (``memory[1,S,D]``) -> new token ids (without eot)."""
        tokens = list(prefix)
        for _ in range(max_tokens):
            logits = self(torch.tensor([tokens], device=memory.device), memory)[0, -1]
            if vocab_limit:
                logits = logits[:vocab_limit]
            nxt = int(logits.argmax())
            if nxt == eot:
                break
            tokens.append(nxt)
        return tokens[len(prefix):]


def build_whisper(config: dict, encoder_layers: int | None = None, causal: bool = True,
                  block_frames: int = 4, with_decoder: bool = True) -> tuple[WhisperEncoder, WhisperDecoder | None]:
    """Encoder (cut to ``encoder_layers``) and decoder shaped by a :func:`.ct2.load_whisper_weights` config."""
    d, ffn = config["d_model"], config["encoder_ffn_dim"]
    enc = WhisperEncoder(config["num_mel_bins"], d, config["encoder_attention_heads"], ffn,
                         encoder_layers or config["encoder_layers"],
                         config["max_source_positions"], causal, block_frames)
    dec = None
    if with_decoder:
        dec = WhisperDecoder(config["vocab_size"], d, config["decoder_attention_heads"], ffn,
                             config["decoder_layers"], config["max_target_positions"])
    return enc, dec


def load_part(module: nn.Module, state: dict[str, Tensor], prefix: str) -> None:
    """Load the weights under ``prefix`` (``encoder.``) that ``module`` has (a cut encoder has fewer)."""
    own = module.state_dict()
    part = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict({k: v for k, v in part.items() if k in own}, strict=True)
