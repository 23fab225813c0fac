"""Components with nothing to train pass through their stage; the dialogues dataset checks its input."""

from __future__ import annotations

import json

import pytest
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.persist.components import needs_training


def test_needs_training():
    assert needs_training(nn.Linear(2, 2))
    assert not needs_training(nn.Identity())  # rule-based: no parameters
    frozen = nn.Linear(2, 2).requires_grad_(False)
    assert not needs_training(frozen)
    pretrained = nn.Linear(2, 2)
    pretrained.trainable = False
    assert not needs_training(pretrained)


def test_dialogue_manifest_errors(tmp_path):
    from plugins.moss_speech.dialogues import DialogueParams, SpokenDialogues

    bad_mode = tmp_path / "a.jsonl"
    bad_mode.write_text(json.dumps({"id": "x", "mode": "s2x", "turns": [{"role": "user", "text": "hi"}]}) + "\n")
    with pytest.raises(ToolkitError, match="s2x"):
        SpokenDialogues(DialogueParams(path=str(bad_mode))).prepare(tmp_path / "out")
    no_audio = tmp_path / "b.jsonl"
    no_audio.write_text(json.dumps({"id": "y", "mode": "s2t", "turns": [
        {"role": "user", "text": "hi"}, {"role": "assistant", "text": "hello"}]}) + "\n")
    paths = SpokenDialogues(DialogueParams(path=str(no_audio))).prepare(tmp_path / "out2")
    assert paths["dialogues"].read_text().strip() == ""  # skipped: its spoken turn has no audio
    assert "y-0" in (tmp_path / "out2" / "bad_files.json").read_text()
