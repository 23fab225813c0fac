"""Chunked synthesis for :class:`~.decoder.FlowVocoder`: ``push(codes) -> wav``, ``flush()``.

Mel is generated ``chunk_tokens`` at a time over a window with ``context_tokens`` of left
context and ``lookahead_tokens`` of right context (the noise of each frame is the same as in
whole-utterance decoding); the vocoder then runs over the new mel with its receptive field of
context on both sides, holding back the frames whose right context has not arrived yet.
"""

from __future__ import annotations

import torch
from torch import Tensor

from toolkit.contracts import StreamingDecoder, VoicePrompt


class ChunkedDecoder(StreamingDecoder):
    def __init__(self, decoder, prompt: VoicePrompt | None = None) -> None:
        self.dec, self.prompt = decoder, prompt
        p = decoder.params
        self.chunk, self.context, self.lookahead = p.chunk_tokens, p.context_tokens, p.lookahead_tokens
        self.codes = torch.zeros(0, dtype=torch.long)
        self.mel = torch.zeros(1, 0, p.n_mels)
        self.tokens_done = 0
        self.frames_emitted = 0

    def _synth(self, end: int, lookahead: int) -> None:
        """Generate mel for tokens ``tokens_done .. end`` using ``lookahead`` tokens beyond."""
        start = max(0, self.tokens_done - self.context)
        stop = min(len(self.codes), end + lookahead)
        up = self.dec.upsample
        mel = self.dec.generate_mel(self.codes[None, start:stop], self.prompt, start * up)
        keep = mel[:, (self.tokens_done - start) * up: (end - start) * up]
        self.mel = torch.cat([self.mel, keep], 1)
        self.tokens_done = end

    def _vocode(self, final: bool) -> Tensor:
        reach = self.dec.vocoder.receptive_frames
        until = self.mel.shape[1] if final else self.mel.shape[1] - reach
        if until <= self.frames_emitted:
            return torch.zeros(0)
        left = max(0, self.frames_emitted - reach)
        wav = self.dec.vocode(self.mel[:, left:])[0]
        hop = 160
        out = wav[(self.frames_emitted - left) * hop: (until - left) * hop]
        self.frames_emitted = until
        return out

    @torch.no_grad()
    def push(self, codes: Tensor) -> Tensor:
        """``codes[L_chunk]`` -> the waveform that is now final ``wav[T_chunk]`` (may be empty)."""
        self.codes = torch.cat([self.codes, codes.reshape(-1).long().cpu()])
        while len(self.codes) - self.tokens_done >= self.chunk + self.lookahead:
            self._synth(self.tokens_done + self.chunk, self.lookahead)
        return self._vocode(final=False)

    @torch.no_grad()
    def flush(self) -> Tensor:
        """End of the codes: synthesise and return everything left."""
        while self.tokens_done < len(self.codes):
            self._synth(min(len(self.codes), self.tokens_done + self.chunk), self.lookahead)
        out = self._vocode(final=True)
        self.codes, self.mel = self.codes[:0], self.mel[:, :0]
        self.tokens_done = self.frames_emitted = 0
        return out
