"""Chunked synthesis for :class:`~.decoder.FlowVocoder`: ``push(codes) -> wav``, ``flush()``.

Mel is generated over windows of new tokens plus ``lookahead_tokens`` of right context (the
noise of each frame is the same as in whole-utterance decoding). Left context is not recomputed:
a :class:`~.nets.ConvStream` keeps, for every convolution of the token features and of each
Euler step of the flow, the inputs of the frames already made final, so each frame is computed
once (plus the lookahead, computed again with the next window) and the voice prompt's prefix is
decoded once, at the start, as offline. The vocoder then runs over the new mel with its receptive
field of context on both sides, holding back the frames whose right context has not arrived yet.

The new tokens of one window are every whole ``chunk_tokens`` chunk that is waiting (with its
lookahead): pushed in pieces of 50 codes (as ``resynth`` does) a window holds 48 of them; pushed
one chunk at a time (as ``chat`` does while it generates), one chunk. With the lookahead
covering the utterance, the output equals the whole-utterance decode. Only the codes and mel
frames still needed are kept, so memory does not grow with the stream. (``context_tokens`` is
no longer read: the kept convolution inputs are the whole left context.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from toolkit.contracts import StreamingDecoder, VoicePrompt

from .nets import ConvStream


class ChunkedDecoder(StreamingDecoder):
    """One stream of a :class:`~.decoder.FlowVocoder`: ``push(codes[L]) -> wav[T]``."""

    def __init__(self, decoder, prompt: VoicePrompt | None = None) -> None:
        self.dec, self.prompt = decoder, prompt
        p = decoder.params
        self.chunk, self.lookahead = p.chunk_tokens, p.lookahead_tokens
        self.n_mels = p.n_mels
        self._reset()

    def _reset(self) -> None:
        self.conv = ConvStream()
        self.codes = torch.zeros(0, dtype=torch.long)
        self.codes_start = 0  # stream index of self.codes[0]: older codes are dropped
        self.mel = torch.zeros(1, 0, self.n_mels)
        self.mel_start = 0  # stream frame index of self.mel[:, 0]: older frames are dropped
        self.tokens_done = 0
        self.frames_emitted = 0

    @property
    def codes_seen(self) -> int:
        return self.codes_start + len(self.codes)

    def _synth(self, end: int, lookahead: int) -> None:
        """Generate mel for tokens ``tokens_done .. end`` using ``lookahead`` tokens beyond."""
        start, stop = self.tokens_done, min(self.codes_seen, end + lookahead)
        window = self.codes[None, start - self.codes_start: stop - self.codes_start]
        mel = self.dec.generate_mel(window, self.prompt, start * self.dec.upsample, self.conv,
                                    commit=end - start)
        keep = mel[:, : (end - start) * self.dec.upsample]
        self.mel = torch.cat([self.mel.to(keep), keep], 1)
        self.tokens_done = end
        self.codes, self.codes_start = self.codes[end - self.codes_start:], end

    def _vocode(self, final: bool) -> Tensor:
        reach = self.dec.vocoder.receptive_frames
        total = self.mel_start + self.mel.shape[1]
        until = total if final else total - reach
        if until <= self.frames_emitted:
            return torch.zeros(0)
        left = max(0, self.frames_emitted - reach)
        wav = self.dec.vocode(self.mel[:, left - self.mel_start:])[0]
        hop = self.dec.hop
        out = wav[(self.frames_emitted - left) * hop: (until - left) * hop]
        self.frames_emitted = until
        keep_from = max(0, until - reach)  # the next call reads from frames_emitted - reach
        if keep_from > self.mel_start:
            self.mel, self.mel_start = self.mel[:, keep_from - self.mel_start:], keep_from
        return out

    @torch.no_grad()
    def push(self, codes: Tensor) -> Tensor:
        """``codes[L_chunk]`` -> the waveform that is now final ``wav[T_chunk]`` (may be empty)."""
        self.codes = torch.cat([self.codes, codes.reshape(-1).long().cpu()])
        chunks = (self.codes_seen - self.tokens_done - self.lookahead) // self.chunk
        if chunks > 0:
            self._synth(self.tokens_done + chunks * self.chunk, self.lookahead)
        return self._vocode(final=False)

    @torch.no_grad()
    def flush(self) -> Tensor:
        """End of the codes: synthesise and return everything left, then start a new stream."""
        if self.tokens_done < self.codes_seen:
            self._synth(self.codes_seen, 0)
        out = self._vocode(final=True)
        self._reset()
        return out
