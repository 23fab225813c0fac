"""Import then export (``python -m toolkit export ... --format moss-speech``) is bit-identical."""

from __future__ import annotations

import json

import pytest
import torch

from toolkit.cli import main as cli
from toolkit.errors import ToolkitError
from toolkit.formats.moss_layout import read_folder
from toolkit.formats.moss_speech import export_moss, load_moss


def _assert_identical(a_dir, b_dir) -> None:
    _, a, a_map = read_folder(a_dir)
    _, b, b_map = read_folder(b_dir)
    assert a_map == b_map and set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name].view(torch.int16), b[name].view(torch.int16)), name


def test_cli_export_is_bit_identical(moss_dir, tmp_path, capsys):
    out = tmp_path / "exported"
    assert cli(["export", str(moss_dir), str(out), "--format", "moss-speech"]) == 0
    _assert_identical(moss_dir, out)
    assert json.loads((out / "config.json").read_text()) == json.loads((moss_dir / "config.json").read_text())
    assert (out / "tokenizer.json").read_bytes() == (moss_dir / "tokenizer.json").read_bytes()
    again = tmp_path / "again"
    assert cli(["export", str(out), str(again), "--format", "moss-speech"]) == 0
    _assert_identical(moss_dir, again)


def test_changed_weight_is_exported_and_only_it(moss_dir, tmp_path):
    lm = load_moss(moss_dir)
    with torch.no_grad():
        lm.model.branches["speech"].layers[1].mlp.up_proj.weight.add_(1.0)
        lm.model.shared[0].self_attn.k_norm.weight.mul_(2.0)
    out = export_moss(lm, tmp_path / "tuned")
    _, a, _ = read_folder(moss_dir)
    _, b, _ = read_folder(out)
    changed = {n for n in a if not torch.equal(a[n], b[n])}
    assert changed == {"model.audio_block.layers.1.mlp.up_proj.weight",
                       "model.shared_block.layers.0.self_attn.k_norm.weight"}
    back = load_moss(out)
    torch.testing.assert_close(back.model.shared[0].self_attn.k_norm.weight,
                               lm.model.shared[0].self_attn.k_norm.weight.to(torch.bfloat16).float())


def test_trunk_save_pretrained_writes_the_trained_speech_side(moss_dir, tmp_path):
    lm = load_moss(moss_dir)
    with torch.no_grad():
        lm.model.speech_embed.weight[3] = 0.5
    lm.trunk.save_pretrained(tmp_path / "saved")
    _, b, _ = read_folder(tmp_path / "saved")
    assert torch.all(b["model.audio_embed.weight"][3] == 0.5)


def test_export_refuses_other_models_and_the_source(moss_dir, tmp_path):
    lm = load_moss(moss_dir)
    with pytest.raises(ToolkitError, match="source checkpoint"):
        export_moss(lm, moss_dir)
    assert cli(["export", str(tmp_path / "nothing"), str(tmp_path / "o"), "--format", "moss-speech"]) == 2


def test_init_from_a_moss_folder_and_toolkit_load(moss_dir, tmp_path):
    import toolkit
    from toolkit.formats.moss_build import build_checkpoint
    from toolkit.formats.moss_speech import load_published_into

    other = build_checkpoint(tmp_path / "other", seed=9, tokenizer=False)
    lm = toolkit.load(moss_dir)  # toolkit.load dispatches a MOSS-Speech folder
    load_published_into(lm.model, other)
    want = load_moss(other).model.state_dict()
    got = lm.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    small = build_checkpoint(tmp_path / "small", config={"hidden_size": 32, "head_dim": 8}, tokenizer=False)
    with pytest.raises(ToolkitError, match="does not fit"):
        load_published_into(lm.model, small)


def test_toolkit_format_export_of_a_moss_folder_reloads(moss_dir, tmp_path):
    import toolkit

    assert cli(["export", str(moss_dir), str(tmp_path / "tk")]) == 0
    assert json.loads((tmp_path / "tk/trunk/config.json").read_text())["model_type"] == "moss_speech"
    a, b = toolkit.load(moss_dir).model.state_dict(), toolkit.load(tmp_path / "tk").model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
