"""A tiny random ``WhisperVQEncoder`` folder in the published layout (HF names under
``model.encoder.``, ``config.json`` with the ``WhisperVQConfig`` fields, safetensors)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

CONFIG = {"architectures": ["WhisperVQForConditionalGeneration"], "model_type": "whisper",
          "d_model": 32, "encoder_layers": 3, "encoder_attention_heads": 4, "encoder_ffn_dim": 64,
          "decoder_layers": 1, "num_mel_bins": 128, "max_source_positions": 1500,
          "activation_function": "gelu", "scale_embedding": False, "pooling_kernel_size": 4,
          "pooling_type": "avg", "pooling_position": 2, "quantize_position": 2,
          "quantize_vocab_size": 64, "quantize_causal_block_size": 8, "quantize_causal_encoder": True,
          "quantize_encoder_only": False, "encoder_causal_convolution": True,
          "encoder_causal_attention": False}


def _layer_tensors(prefix: str, d: int, ffn: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    r = lambda *s: 0.3 * torch.randn(*s, generator=g)  # noqa: E731
    out = {f"{prefix}self_attn.{p}_proj.weight": r(d, d) for p in ("q", "k", "v", "out")}
    out.update({f"{prefix}self_attn.{p}_proj.bias": r(d) for p in ("q", "v", "out")})
    out.update({f"{prefix}self_attn_layer_norm.weight": 1 + r(d), f"{prefix}self_attn_layer_norm.bias": r(d),
                f"{prefix}final_layer_norm.weight": 1 + r(d), f"{prefix}final_layer_norm.bias": r(d),
                f"{prefix}fc1.weight": r(ffn, d), f"{prefix}fc1.bias": r(ffn),
                f"{prefix}fc2.weight": r(d, ffn), f"{prefix}fc2.bias": r(d)})
    return out


def build_codec(folder: Path) -> Path:
    """Write the tiny codec: a layer past the quantizer, a final layer norm and a decoder
    tensor (all unused by encoding), ``preprocessor_config.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    d = CONFIG["d_model"]
    t = {"conv1.weight": 0.2 * torch.randn(d, 128, 3, generator=g), "conv1.bias": torch.zeros(d),
         "conv2.weight": 0.2 * torch.randn(d, d, 3, generator=g), "conv2.bias": 0.1 * torch.randn(d, generator=g),
         "embed_positions.weight": 0.1 * torch.randn(1500, d, generator=g),
         "embed_positions2.weight": torch.randn(375, d, generator=g),
         "codebook.weight": torch.randn(64, d, generator=g),
         "layer_norm.weight": torch.ones(d), "layer_norm.bias": torch.zeros(d)}
    for i in range(CONFIG["encoder_layers"]):
        t.update(_layer_tensors(f"layers.{i}.", d, CONFIG["encoder_ffn_dim"], g))
    tensors = {f"model.encoder.{k}": v for k, v in t.items()}
    tensors["model.decoder.embed_tokens.weight"] = torch.zeros(10, d)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128, "hop_length": 160,
        "n_fft": 400, "sampling_rate": 16000, "chunk_length": 30, "padding_value": 0.0}))
    return folder
