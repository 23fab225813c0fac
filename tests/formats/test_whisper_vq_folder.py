"""``whisper_vq`` loads a WhisperVQEncoder folder; its codes match a reference written from
GLM-4-Voice's ``extract_speech_token`` semantics (features from transformers' own
WhisperFeatureExtractor, the encoder by hand) on a tiny random encoder."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import toolkit
from toolkit.errors import ToolkitError

from codec_folder import CONFIG, build_codec


@pytest.fixture(scope="module")
def codec_dir(tmp_path_factory):
    return build_codec(tmp_path_factory.mktemp("codec"))


def reference_codes(folder, wav: torch.Tensor) -> list[int]:
    """GLM-4-Voice's extract_speech_token for one clip, written from its semantics."""
    from safetensors.torch import load_file
    from transformers import WhisperFeatureExtractor

    c = CONFIG
    t = {k.removeprefix("model.encoder."): v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, n_fft=400)
    out = []
    for start in range(0, len(wav), 30 * 16000):
        seg = wav[start: start + 30 * 16000].numpy()
        f = fe([seg], sampling_rate=16000, return_attention_mask=True, return_tensors="pt",
               padding="longest", pad_to_multiple_of=2 * 4 * 160)
        x, mask = f.input_features.double(), f.attention_mask
        x = F.gelu(F.conv1d(F.pad(x, (2, 0)), t["conv1.weight"], t["conv1.bias"]))
        x = F.gelu(F.conv1d(F.pad(x, (2, 0)), t["conv2.weight"], t["conv2.bias"], stride=2))
        x = x[0].T + t["embed_positions.weight"][: x.shape[-1]]
        mask, block = mask[0, ::2].bool(), c["quantize_causal_block_size"]
        for i in range(c["quantize_position"]):
            x = _ref_layer(x, t, f"layers.{i}.", mask, block)
            if i + 1 == c["pooling_position"]:
                k = c["pooling_kernel_size"]
                x = F.avg_pool1d(F.pad(x.T[None], (0, -x.shape[0] % k)), k)[0].T
                mask, block = mask[::k], block // k
        dist = torch.cdist(x, t["codebook.weight"])
        out += dist.argmin(-1)[mask].tolist()
    return out


def _ref_layer(x, t, p, mask, block):
    n, d, H = x.shape[0], x.shape[1], CONFIG["encoder_attention_heads"]
    i = torch.arange(n)
    allowed = ((i[None] <= i[:, None]) | (i[None] // block == i[:, None] // block)) & mask[None]
    bias = (~allowed).double() * torch.finfo(torch.float64).min
    h = F.layer_norm(x, (d,), t[p + "self_attn_layer_norm.weight"], t[p + "self_attn_layer_norm.bias"])
    q = (h @ t[p + "self_attn.q_proj.weight"].T + t[p + "self_attn.q_proj.bias"]) * (d // H) ** -0.5
    k = h @ t[p + "self_attn.k_proj.weight"].T
    v = h @ t[p + "self_attn.v_proj.weight"].T + t[p + "self_attn.v_proj.bias"]
    q, k, v = (z.view(n, H, d // H).transpose(0, 1) for z in (q, k, v))
    a = ((q @ k.transpose(1, 2) + bias).softmax(-1) @ v).transpose(0, 1).reshape(n, d)
    x = x + a @ t[p + "self_attn.out_proj.weight"].T + t[p + "self_attn.out_proj.bias"]
    h = F.layer_norm(x, (d,), t[p + "final_layer_norm.weight"], t[p + "final_layer_norm.bias"])
    h = F.gelu(h @ t[p + "fc1.weight"].T + t[p + "fc1.bias"])
    return x + h @ t[p + "fc2.weight"].T + t[p + "fc2.bias"]


def _clip(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    tone = torch.sin(torch.arange(n) * 2 * math.pi * (180 + 60 * seed) / 16000)
    return (0.3 * tone + 0.05 * torch.randn(n, generator=g)).float()


def test_codes_match_reference(codec_dir):
    tok = toolkit.build("tokenizer", "whisper_vq", checkpoint=str(codec_dir))
    assert tok.frame_rate == 12.5 and tok.codebook_size == 64 and not tok.trainable
    clips = [_clip(1.0, 1), _clip(2.37, 2), _clip(0.41, 3)]
    for clip in clips:
        codes, n = tok.encode(clip[None])
        ref = reference_codes(codec_dir, clip)
        assert codes[0, : int(n[0])].tolist() == ref
    assert tok.encode(clips[0][None])[1].item() == 13  # one second -> 13 codes, as published
    batch = torch.zeros(3, len(clips[1]))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    codes, n = tok.encode(batch, torch.tensor([len(c) for c in clips]))
    for i, c in enumerate(clips):
        assert codes[i, : int(n[i])].tolist() == reference_codes(codec_dir, c)


def test_long_clip_is_cut_into_30s_windows(codec_dir):
    tok = toolkit.build("tokenizer", "whisper_vq", checkpoint=str(codec_dir))
    clip = _clip(31.0, 4)
    codes, n = tok.encode(clip[None])
    assert int(n[0]) == 375 + 13
    assert codes[0, : int(n[0])].tolist() == reference_codes(codec_dir, clip)


def test_nothing_to_train_and_bad_folders(codec_dir, tmp_path):
    tok = toolkit.build("tokenizer", "whisper_vq", checkpoint=str(codec_dir))
    with pytest.raises(ToolkitError, match="nothing to train"):
        tok.training_losses({"wav": torch.zeros(1, 16000), "lengths": torch.tensor([16000])})
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "pytorch_model.bin").write_bytes(b"never unpickled")
    with pytest.raises(ToolkitError, match="model.safetensors"):
        toolkit.build("tokenizer", "whisper_vq", checkpoint=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "d_model": 48}))
    save_file({"model.encoder.conv1.weight": torch.zeros(32, 128, 3)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ToolkitError, match="conv1"):
        toolkit.build("tokenizer", "whisper_vq", checkpoint=str(tmp_path))
