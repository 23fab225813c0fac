"""Export -> toolkit.load round trip (bit-exact logits) and one-line errors for bad folders."""

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.loading import export_model, load


def _grid(lm, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, lm.tokens.text_vocab_size, (2, n), generator=g)
    speech = torch.randint(0, lm.tokens.speech_vocab_size, (2, n), generator=g)
    is_speech = torch.rand(2, n, generator=g) < 0.5
    text = torch.where(is_speech, torch.full_like(text, lm.tokens.modality_pad), text)
    speech = torch.where(is_speech, speech, torch.full_like(speech, lm.tokens.speech_pad))
    return torch.stack([text, speech], -1)


def test_export_then_load_gives_identical_logits_and_components(tiny_lm, tmp_path):
    export_model(tiny_lm, tmp_path / "exp")
    back = load(tmp_path / "exp")
    grid = _grid(tiny_lm)
    with torch.no_grad():
        a, b = tiny_lm.model(grid), back.model(grid)
    assert torch.equal(a.text_logits, b.text_logits)
    assert torch.equal(a.speech_logits, b.speech_logits)
    assert back.tokens == tiny_lm.tokens
    assert back.text_tokenizer.encode("capital of France") == tiny_lm.text_tokenizer.encode("capital of France")
    for name in ("tokenizer", "decoder"):
        ours, theirs = getattr(tiny_lm, name).state_dict(), getattr(back, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    wav = torch.randn(1, 8000) * 0.1
    assert torch.equal(tiny_lm.tokenizer.encode(wav)[0], back.tokenizer.encode(wav)[0])


def test_export_holds_each_text_side_tensor_once(tiny_lm, tmp_path):
    from safetensors import safe_open

    export_model(tiny_lm, tmp_path / "exp")
    with safe_open(str(tmp_path / "exp" / "speech_lm.safetensors"), "pt") as fh:
        names = set(fh.keys())
    assert names and all(n.startswith(("speech_embed", "branches.speech")) for n in names)


def test_load_missing_folder_is_one_line_error(tmp_path):
    with pytest.raises(ToolkitError, match="no such folder"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ToolkitError, match="neither an exported model"):
        load(tmp_path / "empty")


def test_cli_eval_and_chat_on_missing_run_print_one_line(tmp_path, capsys):
    from toolkit.cli import main

    for argv in (["eval", str(tmp_path / "nope")],
                 ["chat", str(tmp_path / "nope"), "--text", "hi", "--out", str(tmp_path / "a.wav")]):
        capsys.readouterr()
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "nope" in lines[0]
