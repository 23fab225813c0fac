"""The tiny checkpoints are in the published layout; bad folders are one-line errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from toolkit.errors import ToolkitError
from toolkit.formats.moss_build import REAL_SIZE, TINY, build_checkpoint
from toolkit.formats.moss_layout import LAYER_TENSORS, expected_shapes, parse_config, read_folder
from toolkit.formats.moss_speech import load_moss


def test_real_size_inventory_is_the_published_one():
    shapes = expected_shapes(parse_config(REAL_SIZE, "real"))
    assert len(shapes) == 446
    assert shapes["model.embed_tokens.weight"] == (151680, 4096)
    assert shapes["model.audio_embed.weight"] == (16512, 4096)
    assert shapes["model.shared_block.layers.31.self_attn.k_proj.weight"] == (1024, 4096)
    assert shapes["model.audio_block.layers.3.mlp.down_proj.weight"] == (4096, 12288)
    assert shapes["model.text_block.layers.0.self_attn.q_norm.weight"] == (128,)
    assert "model.shared_block.layers.32.mlp.up_proj.weight" not in shapes
    assert shapes["text_lm_head.weight"] == (151680, 4096) and shapes["audio_lm_head.weight"] == (16512, 4096)


def test_tiny_folder_layout(moss_dir):
    raw = json.loads((moss_dir / "config.json").read_text())
    assert raw["model_type"] == "moss_speech" and raw["channels"] == 2
    assert raw["num_hidden_layers"] == raw["num_shared_layers"] + raw["num_modality_layers"]
    assert set(REAL_SIZE) == set(raw)  # the same fields as the published config
    index = json.loads((moss_dir / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    names, total = set(), 0
    for shard in shards:
        with safe_open(str(moss_dir / shard), framework="pt") as fh:
            for name in fh.keys():
                t = fh.get_tensor(name)
                assert t.dtype == torch.bfloat16 and index["weight_map"][name] == shard
                names.add(name)
                total += t.numel() * 2
    assert index["metadata"]["total_size"] == total
    cfg = parse_config(raw, "tiny")
    assert names == set(expected_shapes(cfg))
    assert {n.rsplit("layers.0.", 1)[1] for n in names if "shared_block.layers.0." in n} == set(LAYER_TENSORS)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(moss_dir / "tokenizer.json"))
    roles = {"sosp_token_id": "<|object_ref_start|>", "modality_pad_token_id": "<|empty|>",
             "eos_token_id": "<|im_end|>", "pad_token_id": "<|endoftext|>"}
    for key, token in roles.items():
        assert tok.token_to_id(token) == raw[key]
    assert raw["eosp_token_id"] < raw["audio_vocab_size"] and raw["audio_pad_token_id"] < raw["eosp_token_id"]


@pytest.fixture
def broken(moss_dir, tmp_path):
    out = tmp_path / "broken"
    shutil.copytree(moss_dir, out)
    return out


def _one_line_error(folder) -> str:
    with pytest.raises(ToolkitError) as err:
        load_moss(folder)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_wrong_model_type(broken):
    raw = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**raw, "model_type": "qwen3"}))
    msg = _one_line_error(broken)
    assert "config.json" in msg and "qwen3" in msg and "moss_speech" in msg


def test_missing_shard(broken):
    (broken / "model-00002-of-00002.safetensors").unlink()
    msg = _one_line_error(broken)
    assert "model-00002-of-00002.safetensors" in msg and "not found" in msg and "tensor '" in msg


def test_index_names_missing_file(broken):
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.audio_norm.weight"] = "model-00009-of-00009.safetensors"
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    msg = _one_line_error(broken)
    assert "model-00009-of-00009.safetensors" in msg and "model.audio_norm.weight" in msg


def test_index_missing_tensor(broken):
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    del index["weight_map"]["model.text_block.layers.1.self_attn.k_norm.weight"]
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    msg = _one_line_error(broken)
    assert "model.safetensors.index.json" in msg and "model.text_block.layers.1.self_attn.k_norm.weight" in msg


def test_wrong_shape(broken):
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["model.audio_embed.weight"]
    with safe_open(str(broken / shard), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    tensors["model.audio_embed.weight"] = tensors["model.audio_embed.weight"][:-1].clone()
    save_file(tensors, str(broken / shard))
    msg = _one_line_error(broken)
    assert shard in msg and "model.audio_embed.weight" in msg and "[79, 64]" in msg and "[80, 64]" in msg


def test_pickle_only_folder_is_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    msg = _one_line_error(folder)
    assert "model.safetensors" in msg


def test_single_file_layout_loads(tmp_path):
    folder = build_checkpoint(tmp_path / "one", n_shards=1, tokenizer=False)
    (folder / "model-00001-of-00001.safetensors").rename(folder / "model.safetensors")
    (folder / "model.safetensors.index.json").unlink()
    cfg, tensors, _ = read_folder(folder)
    assert len(tensors) == len(expected_shapes(cfg))
    assert load_moss(folder).text_tokenizer is None
