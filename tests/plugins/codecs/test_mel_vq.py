"""mel_vq: exact streaming, causality, reconstruction training."""

import torch

import toolkit


def small():
    torch.manual_seed(0)
    return toolkit.build("tokenizer", "mel_vq", channels=64, layers=3, codebook_size=32,
                         codebook_dim=8)


def test_streaming_equals_offline_exactly(sentence):
    tok = small().eval()
    wav = sentence[1]
    offline, lengths = tok.encode(wav[None])
    assert tok.frame_rate == 25.0 and offline.shape[1] == lengths[0] == -(-len(wav) // 640)
    stream = tok.stream_encoder()
    got = torch.cat([stream.push(wav[i:i + 999]) for i in range(0, len(wav), 999)] + [stream.flush()])
    assert torch.equal(got, offline[0])


def test_causal_gradients():
    tok = small()
    spt = tok.samples_per_token
    wav = (0.1 * torch.randn(1, 12 * spt)).requires_grad_(True)
    z, _ = tok.features(tok.mel(wav))
    for t in (0, 5, 10):
        grad, = torch.autograd.grad(z[0, t].sum(), wav, retain_graph=True)
        assert grad[0, (t + 1) * spt:].abs().max() == 0
        assert grad[0, t * spt:(t + 1) * spt].abs().max() > 0


def test_training_reduces_reconstruction_loss(sentence):
    tok = small().train()
    batch = {"wav": sentence[1][None], "lengths": torch.tensor([len(sentence[1])]),
             "text": [sentence[0]], "speaker": ["a"]}
    opt = torch.optim.AdamW(tok.parameters(), lr=2e-3)
    first = float(tok.training_losses(batch)["mel_l1"])
    for _ in range(25):
        loss = tok.training_losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(tok.training_losses(batch)["mel_l1"]) < 0.75 * first
