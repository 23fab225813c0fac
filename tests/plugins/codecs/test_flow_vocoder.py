"""flow_vocoder: shapes, chunked synthesis against whole-utterance synthesis, training."""

import random

import pytest
import torch

import toolkit
from toolkit.errors import ToolkitError


def small(**kw):
    torch.manual_seed(0)
    return toolkit.build("decoder", "flow_vocoder", codebook_size=32, dim=64, flow_layers=3,
                         vocoder_dim=64, vocoder_layers=2, steps=4, **kw)


def snr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - test).pow(2).sum().clamp(min=1e-20)))


def stream(dec, codes, prompt=None, step=3):
    s = dec.stream_decoder(prompt)
    return torch.cat([s.push(codes[i:i + step]) for i in range(0, len(codes), step)] + [s.flush()])


def test_decode_length_and_prompt():
    dec = small().eval()
    codes = torch.randint(0, 32, (2, 10))
    wav = dec.decode(codes)
    assert wav.shape == (2, 10 * 1280) and torch.isfinite(wav).all()
    prompt = dec.make_prompt(0.1 * torch.randn(16000), torch.randint(0, 32, (12,)))
    assert prompt.mel.shape == (96, 80) and prompt.speaker.shape == (64,)
    assert dec.decode(codes, prompt).shape == (2, 12800)


def test_streaming_with_full_context_equals_offline():
    """With context and lookahead covering the utterance, chunking changes nothing (1e-4)."""
    dec = small(chunk_tokens=4, context_tokens=64, lookahead_tokens=64).eval()
    codes = torch.randint(0, 32, (20,))
    offline = dec.decode(codes[None])[0]
    got = stream(dec, codes)
    assert got.shape == offline.shape
    assert (got - offline).abs().max() < 1e-4 * offline.abs().max().clamp(min=1)


def test_streaming_with_lookahead_is_close_to_offline():
    """Measure: SNR of the chunked output against whole-utterance decoding, >= 10 dB
    (default chunk 8, context 12, lookahead 2 tokens)."""
    dec = small().eval()
    codes = torch.randint(0, 32, (40,))
    prompt = dec.make_prompt(0.1 * torch.randn(8000))
    offline = dec.decode(codes[None], prompt)[0]
    got = stream(dec, codes, prompt, step=5)
    assert got.shape == offline.shape
    assert snr_db(offline, got) >= 10.0


def test_streaming_in_pieces_of_several_chunks_stays_close_and_restarts_clean():
    """Pushed 50 codes at a time, a window holds every whole chunk that waits: as close to
    whole-utterance decoding as chunk-at-a-time, and after flush() the same object decodes a
    new stream exactly as a fresh one (no convolution context carried over)."""
    dec = small().eval()
    codes = torch.randint(0, 32, (130,))
    offline = dec.decode(codes[None])[0]
    one_chunk, pieces = stream(dec, codes, step=8), stream(dec, codes, step=50)
    assert pieces.shape == offline.shape == one_chunk.shape
    assert snr_db(offline, pieces) >= max(10.0, snr_db(offline, one_chunk) - 1.0)
    s = dec.stream_decoder(None)
    first = [s.push(codes[:60]), s.push(codes[60:]), s.flush()]
    again = [s.push(codes[:60]), s.push(codes[60:]), s.flush()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_streaming_with_an_in_context_prompt_matches_offline():
    """The prompt's prefix enters the first window only, as it prefixes the utterance offline:
    with the lookahead covering the utterance streaming equals offline (1e-4), and with the
    default chunking it stays close (>= 10 dB)."""
    prompt_dec = small().eval()
    prompt = prompt_dec.make_prompt(0.1 * torch.randn(16000), torch.randint(0, 32, (12,)))
    codes = torch.randint(0, 32, (40,))
    whole = small(chunk_tokens=4, lookahead_tokens=64).eval()
    offline = whole.decode(codes[None], prompt)[0]
    got = stream(whole, codes, prompt)
    assert (got - offline).abs().max() < 1e-4 * offline.abs().max().clamp(min=1)
    offline = prompt_dec.decode(codes[None], prompt)[0]
    got = stream(prompt_dec, codes, prompt, step=5)
    assert got.shape == offline.shape and snr_db(offline, got) >= 10.0


def test_voice_prompt_reads_only_the_first_seconds_of_a_long_clip():
    """make_prompt of a 20 s clip = make_prompt of its first VOICE_PROMPT_SECONDS: the prompt
    costs the same however long the clip is."""
    from toolkit.contracts import VOICE_PROMPT_SECONDS

    dec = small().eval()
    wav, codes = 0.1 * torch.randn(20 * 16000), torch.randint(0, 32, (250,))
    prompt = dec.make_prompt(wav, codes)
    head = dec.make_prompt(wav[: int(VOICE_PROMPT_SECONDS * 16000)], codes)
    assert prompt.mel.shape[0] <= VOICE_PROMPT_SECONDS * 100
    assert len(prompt.codes) * dec.upsample == prompt.mel.shape[0]
    assert torch.equal(prompt.mel, head.mel) and torch.equal(prompt.speaker, head.speaker)
    assert dec.make_prompt(wav).mel.shape[0] <= VOICE_PROMPT_SECONDS * 100  # speaker-only prompt too


def test_training_reduces_losses(sentence):
    random.seed(0)  # prompt masks and vocoder crops use `random`, flow times use torch:
    dec = small().train()  # seed both so earlier tests cannot change the outcome
    wav = sentence[1][: 1280 * 20]
    batch = {"wav": wav[None], "lengths": torch.tensor([len(wav)]), "text": ["x"],
             "speaker": ["a"], "codes": torch.arange(20)[None] % 32}
    opt = torch.optim.AdamW(dec.parameters(), lr=3e-3)
    torch.manual_seed(1)
    first = {k: float(v) for k, v in dec.training_losses(batch).items()}
    for _ in range(60):
        loss = dec.training_losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    last = {k: float(v) for k, v in dec.training_losses(batch).items()}
    assert last["flow"] < first["flow"] and last["vocoder"] < 0.8 * first["vocoder"]
    assert last["prior"] < 0.5 * first["prior"]  # the prior mel regresses the target mel


def test_temperature_scales_the_noise_around_the_prior():
    """At temperature 0 the flow starts exactly at the prior mel: the noise table is irrelevant."""
    codes = torch.randint(0, 32, (1, 12))
    outputs = {}
    for temperature in (0.0, 1.0):
        dec = small(temperature=temperature).eval()
        first = dec.generate_mel(codes)
        dec.noise_table.normal_(generator=torch.Generator().manual_seed(99))
        outputs[temperature] = (first, dec.generate_mel(codes))
    torch.testing.assert_close(*outputs[0.0])
    assert not torch.allclose(*outputs[1.0])


def test_start_time_refines_the_prior_over_the_rest_of_the_flow():
    """start_time s: the estimator is asked at times s + (1-s) i/steps only, and the Euler steps
    span 1-s; at s = 1 the output is the prior mel whatever the steps; steps 0 gives the prior."""
    codes = torch.randint(0, 32, (1, 12))
    dec = small(start_time=0.5, temperature=0.0).eval()  # 4 steps
    prior = dec.prior_mel(dec.token_features(codes))
    times, velocity = [], dec.estimator.forward

    def spy(x, t, *rest):
        times.append(float(t[0]))
        return velocity(x, t, *rest)

    dec.estimator.forward = spy
    refined = dec.generate_mel(codes)
    assert times == [0.5, 0.625, 0.75, 0.875]
    assert not torch.allclose(refined, prior)
    dec.params.start_time = 1.0
    torch.testing.assert_close(dec.generate_mel(codes), prior)
    dec.params.start_time, dec.params.steps = 0.0, 0
    torch.testing.assert_close(dec.generate_mel(codes), prior)
    with pytest.raises(ToolkitError, match=r"start_time must be in \[0, 1\], got 1.5"):
        small(start_time=1.5)


def test_code_vectors_make_close_codes_start_close():
    """With the tokenizer's code vectors, two codes with the same vector get nearly the same
    features before any training (the per-code embedding only adds a small offset), and the
    setting survives a save / load through the params."""
    dec = small()
    vectors = torch.randn(32, 24)
    vectors[1] = vectors[0]
    dec.init_code_vectors(vectors)
    assert dec.params.code_dim == 24
    h = dec.token_features(torch.tensor([[0, 1, 2]]))[0]  # [3*8, D]
    same, other = (h[8:16] - h[:8]).norm(), (h[16:24] - h[:8]).norm()
    assert same < 0.5 * other
    again = toolkit.build("decoder", "flow_vocoder", **vars(dec.params))
    again.load_state_dict(dec.state_dict())
    torch.testing.assert_close(again.code_vectors, dec.code_vectors)
