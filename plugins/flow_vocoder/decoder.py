"""``flow_vocoder``: codes -> mel by conditional flow matching, mel -> waveform by an ISTFT vocoder.

Tokens are embedded (a learned per-code embedding plus a learned projection of the tokenizer's
code vectors, when the decoder stage hands them over), mixed with their neighbours at the token
rate, repeated to the mel rate (``100 / frame_rate`` frames each, plus an embedding of the
frame's place inside its token) and smoothed. A linear prior maps these features to a mel; a
ConvNeXt estimator, conditioned on them, on a voice prompt's mel (an in-context prefix, as in
CosyVoice) and on a speaker embedding, integrates the flow from that prior plus noise to the mel
with Euler steps and classifier-free guidance. The noise of frame ``i`` is fixed (a seeded table),
so chunked (streaming) synthesis with lookahead stays close to whole-utterance synthesis; it
keeps each convolution's left context instead of recomputing it (``streaming.py``), so it costs
about as much as whole-utterance synthesis. A voice prompt is read up to its first
:data:`toolkit.contracts.VOICE_PROMPT_SECONDS`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from toolkit.registry import API_VERSION
from toolkit.audio_features import mel_for_vocoder
from toolkit.contracts import VOICE_PROMPT_SECONDS, Decoder, StreamingDecoder, VoicePrompt, voice_prompt_clip
from toolkit.errors import ToolkitError

from .nets import (ConvNeXtBlock, ConvStream, FlowEstimator, ISTFTVocoder, SpeakerEncoder,
                   multi_resolution_stft_loss)

MEL_MEAN, MEL_SCALE = -2.5, 2.0
"""Flow-space mel = (log10-mel - MEL_MEAN) / MEL_SCALE (roughly unit range)."""


@dataclass
class FlowVocoderParams:
    codebook_size: int = 1024
    """Must equal the tokenizer's (the decoder stage sets it from the trained tokenizer)."""
    frame_rate: float = 12.5
    """Codes per second; ``100 / frame_rate`` mel frames per code."""
    dim: int = 192
    code_dim: int = 0
    """Width of the tokenizer's code vectors that the decoder reads through a learned projection
    next to its own code embedding; set by :meth:`FlowVocoder.init_code_vectors` (0 = none)."""
    flow_layers: int = 6
    token_layers: int = 2
    """ConvNeXt blocks over the upsampled token features (mel rate, kernel 7)."""
    context_layers: int = 4
    """ConvNeXt blocks over the tokens themselves (token rate, kernel 5: +-2 tokens each), so a
    token's features see its neighbours (coarticulation) before upsampling."""
    vocoder_dim: int = 192
    vocoder_layers: int = 6
    n_mels: int = 80
    n_fft: int = 640
    steps: int = 10
    """Euler steps at inference."""
    cfg_scale: float = 0.0
    """Classifier-free guidance weight w: v = (1 + w) v_cond - w v_uncond (0 = off). Off by
    default: on a moss_full decoder it raised judge WER (0.43 at w=0, 0.61 at 0.5, 0.69 at 1)."""
    cfg_dropout: float = 0.2
    """Training: chance that a row's tokens are dropped (learns v_uncond for cfg_scale > 0; kept
    on as a regulariser: flow WER 0.81 with it, 0.91 without, in two otherwise similar runs)."""
    speaker_dropout: float = 0.3
    """Training: chance that a row gets no speaker embedding (as when decoding without a voice)."""
    prior_weight: float = 1.0
    """Weight of the prior loss: a linear map of the token features regresses the mel, and the
    flow starts from that prior mel plus ``prior_noise`` Gaussian noise (as in Grad-TTS), so
    even a briefly trained flow lands near intelligible speech. 0 = plain flow from noise."""
    prior_noise: float = 1.0
    """Training: scale of the noise around the prior mel at the flow's source. Trained at 0.3
    and decoded at temperature 1.0 (the same noise), a moss_full decoder's flow output was far
    worse than its prior mel (judge WER 1.18 against 0.65 on 40 test utterances); at 1.0 with
    temperature 0.25 the two are close."""
    temperature: float = 0.25
    """Inference: scale of the starting noise around the prior, relative to training. Lower
    is clearer (as in Grad-TTS): judge WER 0.67-0.77 at 0-0.25 against 1.25 at 1.0 for a
    moss_full decoder with dim 256."""
    start_time: float = 0.0
    """Inference: the flow time the Euler steps start from (0 = the source). Above 0 the flow
    refines the prior instead of integrating from its source (as in SDEdit): it starts at the
    prior mel plus ``(1 - start_time) * temperature`` noise, which is where a path would be at
    that time if the prior were the target, and takes its ``steps`` over the rest."""
    prompt_probability: float = 0.5
    """Training: chance that a random prefix (up to 30 %) of the utterance is given as prompt."""
    vocoder_segment: int = 128
    """Training: mel frames per random vocoder segment (one per row). The vocoder is cheap next
    to the flow, so long segments cost little: judge WER of true mels vocoded by a vocoder
    trained alone for 1200 steps (40 moss_full test utterances, original audio 0.44) was 0.69
    at 48 frames and 0.56 at 128."""
    mel_loss_weight: float = 5.0
    """Weight of the vocoder's mel L1 loss next to its multi-resolution STFT loss: 0.52 at 1.0,
    0.43 at 5.0 (same measure, vocoder dim 256 with 6 layers)."""
    chunk_tokens: int = 8
    """Streaming: tokens synthesised per step (every whole chunk waiting goes in one window)."""
    context_tokens: int = 12
    """Not read any more (kept so saved params load): streaming keeps every convolution's left
    context (:class:`~.nets.ConvStream`) instead of recomputing this many tokens per window."""
    lookahead_tokens: int = 2
    """Streaming: tokens of right context a window waits for before its last chunk is final."""
    seed: int = 1234


class FlowVocoder(Decoder):
    """``decode(codes[B,L], prompt, lengths) -> wav[B, L * sample_rate / frame_rate]`` at 16 kHz."""

    Params = FlowVocoderParams
    api_version = API_VERSION
    sample_rate = 16000
    hop = 160
    """Samples per mel frame (10 ms: 100 frames a second), of the mel and of the vocoder."""

    def __init__(self, params: FlowVocoderParams) -> None:
        super().__init__()
        self.params = p = params
        self.mel = mel_for_vocoder(self.sample_rate, self.hop, p.n_mels, p.n_fft)
        ratio = 100.0 / p.frame_rate
        if abs(ratio - round(ratio)) > 1e-6:
            raise ToolkitError(f"flow_vocoder: frame_rate {p.frame_rate} must divide 100 mel frames/s")
        if not 0.0 <= p.start_time <= 1.0:
            raise ToolkitError(f"flow_vocoder: start_time must be in [0, 1], got {p.start_time}")
        self.frame_rate, self.upsample = p.frame_rate, int(round(ratio))
        self.embed = nn.Embedding(p.codebook_size + 1, p.dim)  # last row: "no token" for CFG
        self.code_proj = None
        if p.code_dim:
            self.add_code_input(torch.zeros(p.codebook_size + 1, p.code_dim))
        self.context = nn.ModuleList(ConvNeXtBlock(p.dim, kernel=5) for _ in range(p.context_layers))
        # where a mel frame sits inside its token: lets the features move within a token
        self.position = nn.Parameter(torch.zeros(self.upsample, p.dim))
        self.smooth = nn.ModuleList(ConvNeXtBlock(p.dim) for _ in range(p.token_layers))
        self.prior = nn.Linear(p.dim, p.n_mels) if p.prior_weight > 0 else None
        self.speaker = SpeakerEncoder(p.n_mels, p.dim)
        self.estimator = FlowEstimator(p.n_mels, p.dim, p.flow_layers)
        self.vocoder = ISTFTVocoder(p.n_mels, p.vocoder_dim, p.vocoder_layers, p.n_fft, self.hop)
        noise = torch.randn(4096, p.n_mels, generator=torch.Generator().manual_seed(p.seed))
        self.register_buffer("noise_table", noise, persistent=False)

    def init_code_vectors(self, vectors: Tensor) -> None:
        """Read the tokenizer's code vectors ``vectors[N,Dc]`` (N = codebook_size) through a
        learned projection, so codes that are close in the tokenizer start close here and
        codes seldom seen in training still get sensible features. Call before training."""
        n = self.params.codebook_size
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ToolkitError(f"flow_vocoder: code vectors must be [{n}, D], got {list(vectors.shape)}")
        vectors = vectors.detach().float().cpu()
        vectors = (vectors - vectors.mean(0)) / vectors.std(0).clamp(min=1e-6)
        self.params.code_dim = vectors.shape[1]
        self.add_code_input(torch.cat([vectors, vectors.new_zeros(1, vectors.shape[1])]))  # "no token": 0
        nn.init.normal_(self.embed.weight, std=0.1)  # the projection carries most at first

    def add_code_input(self, table: Tensor) -> None:
        """Read ``table[codebook_size + 1, Dc]`` (a buffer) through a new learned projection."""
        device = self.embed.weight.device
        self.code_proj = nn.Linear(table.shape[1], self.params.dim).to(device)
        self.register_buffer("code_vectors", table.to(device))

    # -- pieces ------------------------------------------------------------------------
    def token_features(self, codes: Tensor, stream: ConvStream | None = None) -> Tensor:
        """``codes[B,L]`` (codebook_size = no token) -> ``mu[B, L*upsample, D]`` (``stream``:
        ``codes`` is a window of a longer stream, see :class:`~.nets.ConvStream`)."""
        h = self.embed(codes)
        if self.code_proj is not None:
            h = h + self.code_proj(self.code_vectors[codes])
        h = rearrange(h, "b l d -> b d l")
        for block in self.context:
            h = block(h, stream=stream)
        h = repeat(h, "b d l -> b d l r", r=self.upsample) + rearrange(self.position, "r d -> 1 d 1 r")
        h = rearrange(h, "b d l r -> b d (l r)")
        for block in self.smooth:
            h = block(h, stream=stream)
        return rearrange(h, "b d f -> b f d")

    def prior_mel(self, mu: Tensor) -> Tensor | None:
        """The prior's mel ``[B,F,M]`` of token features ``mu[B,F,D]`` (None without a prior)."""
        return self.prior(mu) if self.prior is not None else None

    def flow_start(self, prior_mel: Tensor | None, noise: Tensor) -> Tensor:
        """Flow source ``x0[B,F,M]``: ``noise`` alone, or around ``prior_mel[B,F,M]``."""
        if prior_mel is None:
            return noise
        return prior_mel + self.params.prior_noise * noise

    def noise(self, start: int, frames: int, batch: int) -> Tensor:
        """The fixed noise of frames ``start .. start+frames`` -> ``[B,frames,M]``."""
        idx = torch.arange(start, start + frames, device=self.noise_table.device) % len(self.noise_table)
        return repeat(self.noise_table[idx], "f m -> b f m", b=batch)

    def log_mel(self, wav: Tensor) -> Tensor:
        """``wav[B,T]`` -> flow-space mel ``[B, T // hop, M]``."""
        return (self.mel(wav) - MEL_MEAN) / MEL_SCALE

    def make_prompt(self, wav: Tensor, codes: Tensor | None = None,
                    max_seconds: float = VOICE_PROMPT_SECONDS) -> VoicePrompt:
        """Reference clip ``wav[T]`` (16 kHz) [+ its ``codes[L]``] -> VoicePrompt with
        ``mel[F,M]``, ``codes[F/upsample]`` and ``speaker[D]``. With codes the prompt is also an
        in-context prefix; without, only its speaker embedding is used. Only the first
        ``max_seconds`` (:data:`toolkit.contracts.VOICE_PROMPT_SECONDS`) of the clip and the codes
        of those are used, so the prompt's cost does not grow with the clip."""
        wav = voice_prompt_clip(wav.reshape(-1), self.sample_rate, max_seconds)
        mel = self.log_mel(wav.reshape(1, -1).float())[0]
        if codes is not None:
            frames = min(len(codes) * self.upsample, mel.shape[0]) // self.upsample
            codes, mel = codes[:frames], mel[: frames * self.upsample]
        with torch.no_grad():
            speaker = self.speaker(mel[None])[0]
        return VoicePrompt(mel=mel, codes=codes, speaker=speaker)

    # -- inference ---------------------------------------------------------------------
    @torch.no_grad()
    def generate_mel(self, codes: Tensor, prompt: VoicePrompt | None = None,
                     start_frame: int = 0, stream: ConvStream | None = None,
                     commit: int = 0) -> Tensor:
        """``codes[B,L]`` -> flow-space mel ``[B, L*upsample, M]`` (Euler + CFG).

        With ``stream`` (see :class:`~.nets.ConvStream`), ``codes`` are the next tokens of a
        stream starting at mel frame ``start_frame``, of which the first ``commit`` are final
        (the rest are lookahead, given again with the next window); the prompt prefixes the
        first window only, as it prefixes the whole utterance offline."""
        b = codes.shape[0]
        n_prompt = 0
        first = stream is None or not stream.left
        if first and prompt is not None and prompt.codes is not None and len(prompt.codes):
            codes = torch.cat([repeat(prompt.codes.to(codes), "l -> b l", b=b), codes], 1)
            n_prompt = prompt.mel.shape[0]
        if stream is not None:
            stream.window, stream.commit = codes.shape[1], commit + n_prompt // self.upsample
        frames = codes.shape[1] * self.upsample
        known = torch.zeros(b, frames, dtype=torch.bool, device=codes.device)
        known[:, :n_prompt] = True
        given = torch.zeros(b, frames, self.params.n_mels, device=codes.device)
        if n_prompt:
            given[:, :n_prompt] = prompt.mel.to(given)
        speaker = self.speaker_embedding(prompt, b, codes.device)
        mu = self.token_features(codes, _tagged(stream, "mu"))
        noise = torch.cat([self.noise(-n_prompt % len(self.noise_table), n_prompt, b),
                           self.noise(start_frame, frames - n_prompt, b)], 1)
        start, scale = 0.0, 1.0  # without a prior: the plain flow from noise
        if self.prior is not None:
            start = self.params.start_time
            scale = (1 - start) * self.params.temperature
        x = self.flow_start(self.prior_mel(mu), scale * noise)
        w, steps = self.params.cfg_scale, self.params.steps
        if w > 0:
            mu_null = self.token_features(torch.full_like(codes, self.params.codebook_size),
                                          _tagged(stream, "mu_null"))
        for i in range(steps):
            t = torch.full((b,), start + (1 - start) * i / steps, device=x.device)
            if w > 0:
                v_c, v_u = self.estimator(torch.cat([x, x]), torch.cat([t, t]), torch.cat([mu, mu_null]),
                                          torch.cat([given, given]), torch.cat([known, known]),
                                          torch.cat([speaker, speaker]), _tagged(stream, i)).chunk(2)
                v = (1 + w) * v_c - w * v_u
            else:
                v = self.estimator(x, t, mu, given, known, speaker, _tagged(stream, i))
            x = x + v * (1 - start) / steps
        return x[:, n_prompt:]

    def speaker_embedding(self, prompt: VoicePrompt | None, batch: int, device: torch.device) -> Tensor:
        if prompt is None or prompt.speaker is None:
            return torch.zeros(batch, self.params.dim, device=device)
        return repeat(prompt.speaker.to(device), "d -> b d", b=batch)

    @torch.no_grad()
    def vocode(self, mel: Tensor) -> Tensor:
        """Flow-space ``mel[B,F,M]`` -> ``wav[B, F*hop]``."""
        return self.vocoder(mel * MEL_SCALE + MEL_MEAN)

    @torch.no_grad()
    def decode(self, codes: Tensor, prompt: VoicePrompt | None = None,
               lengths: Tensor | None = None) -> Tensor:
        """``codes[B,L]`` -> ``wav[B, L * samples_per_code]``; samples past a length are zeroed."""
        if codes.numel() == 0:
            return torch.zeros(codes.shape[0], 0)
        if int(codes.max()) >= self.params.codebook_size or int(codes.min()) < 0:
            raise ToolkitError(f"flow_vocoder: codes must be in 0..{self.params.codebook_size - 1}")
        wav = self.vocode(self.generate_mel(codes.long(), prompt))
        if lengths is not None:
            keep = torch.arange(wav.shape[1], device=wav.device)[None] < (lengths * self.samples_per_code)[:, None]
            wav = wav * keep
        return wav

    @property
    def samples_per_code(self) -> int:
        return self.upsample * self.hop

    def stream_decoder(self, prompt: VoicePrompt | None = None) -> StreamingDecoder:
        from .streaming import ChunkedDecoder

        return ChunkedDecoder(self, prompt)

    # -- training ----------------------------------------------------------------------
    def training_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Needs ``batch["codes"][B,L]`` (the decoder stage adds the frozen tokenizer's codes)."""
        wav, codes = batch["wav"].float(), batch["codes"].long()
        frames = codes.shape[1] * self.upsample
        wav = F.pad(wav, (0, max(0, frames * self.hop - wav.shape[1])))[:, : frames * self.hop]
        mel = self.log_mel(wav)
        valid = torch.arange(frames, device=wav.device)[None] < (batch["lengths"] // self.hop)[:, None]
        flow = self.flow_loss(codes, mel, valid)
        voc = self.vocoder_loss(wav, mel, valid)
        loss = flow["flow"] + self.params.prior_weight * flow.get("prior", 0.0) + voc["vocoder"]
        return {"loss": loss, **{k: v.detach() for k, v in {**flow, **voc}.items()}}

    def flow_loss(self, codes: Tensor, mel: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """Conditional flow matching (``flow``) and the prior's regression (``prior``) losses on
        ``codes[B,L]``, ``mel[B,F,M]``, ``valid[B,F]``."""
        b, frames, _ = mel.shape
        known = self.random_prompt(valid)
        mu = self.token_features(codes)
        # CFG drops the tokens only: both branches share x_t (from the tokens' prior) at inference
        drop = torch.rand(b, 1, 1, device=mel.device) < self.params.cfg_dropout
        mu_in = mu
        if drop.any():
            mu_in = torch.where(drop, self.token_features(torch.full_like(codes, self.params.codebook_size)), mu)
        # the speaker drops on its own, so decoding without a voice prompt is in distribution
        spk_mask = valid & (torch.rand(b, 1, device=mel.device) < 0.5 + 0.5 * torch.rand(b, frames))
        keep_spk = torch.rand(b, 1, device=mel.device) >= self.params.speaker_dropout
        speaker = self.speaker(mel, spk_mask) * keep_spk.float()
        prior_mel = self.prior_mel(mu)
        x1 = mel
        x0 = self.flow_start(None if prior_mel is None else prior_mel.detach(), torch.randn_like(mel))
        t = torch.rand(b, device=mel.device)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        v = self.estimator(xt, t, mu_in, mel * known[..., None], known, speaker)
        flow = _masked_mean((v - (x1 - x0)).pow(2), (valid & ~known).float()[..., None])
        if prior_mel is None:
            return {"flow": flow}
        return {"flow": flow, "prior": _masked_mean((prior_mel - mel).pow(2), valid.float()[..., None])}

    def random_prompt(self, valid: Tensor) -> Tensor:
        """``known[B,F]``: with ``prompt_probability``, a random prefix (<= 30 %) of each row."""
        known = torch.zeros_like(valid)
        for i in range(valid.shape[0]):
            if random.random() < self.params.prompt_probability:
                known[i, : int(int(valid[i].sum()) * 0.3 * random.random())] = True
        return known

    def vocoder_loss(self, wav: Tensor, mel: Tensor, valid: Tensor) -> dict[str, Tensor]:
        seg = min(self.params.vocoder_segment, mel.shape[1])
        starts = [random.randint(0, max(0, int(v.sum()) - seg)) for v in valid]
        mel_seg = torch.stack([m[s: s + seg] for m, s in zip(mel, starts)])
        wav_seg = torch.stack([w[s * self.hop: (s + seg) * self.hop] for w, s in zip(wav, starts)])
        pred = self.vocoder(mel_seg * MEL_SCALE + MEL_MEAN)
        stft = multi_resolution_stft_loss(pred, wav_seg)
        mel_l1 = (self.log_mel(pred) - self.log_mel(wav_seg)).abs().mean()
        return {"vocoder": stft + self.params.mel_loss_weight * mel_l1, "stft": stft, "voc_mel_l1": mel_l1}


def _tagged(stream: ConvStream | None, tag: object) -> ConvStream | None:
    """``stream`` set to tell apart the convolution calls of ``tag`` (None stays None)."""
    if stream is not None:
        stream.tag = tag
    return stream


def _masked_mean(values: Tensor, weight: Tensor) -> Tensor:
    """Mean of ``values[B,F,M]`` over the frames where ``weight[B,F,1]`` is 1."""
    return (values * weight).sum() / (weight.sum() * values.shape[-1]).clamp(min=1)
