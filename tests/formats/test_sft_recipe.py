"""recipes/moss_speech_sft.yaml on a tiny MOSS-Speech and a tiny codec, a few CPU steps in each
mode (full, speech branch only, LoRA), then the export back to the published layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from toolkit.cli import main as cli
from toolkit.formats.moss_build import build_checkpoint
from toolkit.formats.moss_layout import read_folder

from codec_folder import build_codec

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes/moss_speech_sft.yaml"
CPU = ["trainer.accelerator=cpu", "trainer.strategy=auto", "trainer.precision=32-true",
       "trainer.devices=1", "trunk.params.dtype=fp32"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    moss = build_checkpoint(root / "MOSS-Speech-tiny", seed=2)
    codec = build_codec(root / "codec")
    lines = []
    for i, mode in enumerate(["s2s", "s2t", "t2s", "t2t", "s2s", "t2s"]):
        turns = []
        for j, role in enumerate(["user", "assistant"]):
            spoken = mode[0 if role == "user" else 2] == "s"
            turn = {"role": role, "text": f"turn {j} of dialogue {i}"}
            if spoken:
                n = 16000 * (1 + (i + j) % 2) // 2
                tone = 0.3 * torch.sin(torch.arange(n) * 2 * math.pi * (200 + 30 * i + 50 * j) / 16000)
                sf.write(root / f"d{i}_{j}.wav", tone.numpy(), 16000)
                turn["audio_filepath"] = f"d{i}_{j}.wav"
            turns.append(turn)
        lines.append(json.dumps({"id": f"d{i}", "mode": mode, "turns": turns}))
    (root / "dialogues.jsonl").write_text("\n".join(lines) + "\n")
    return {"moss": moss, "codec": codec, "dialogues": root / "dialogues.jsonl", "root": root}


def _run(inputs, name: str, *extra: str) -> Path:
    out = inputs["root"] / name
    code = cli(["run", str(RECIPE), f"out={out}", f"vars.moss={inputs['moss']}",
                f"vars.codec={inputs['codec']}", f"vars.dialogues={inputs['dialogues']}",
                "stage_args.sft.max_steps=3", "stage_args.sft.lr=1e-2", "stage_args.sft.text_lr=1e-2",
                "stage_args.sft.warmup=0", "stage_args.sft.batch_tokens=512", *CPU, *extra])
    assert code == 0
    return out


def _exported(inputs, run: Path) -> dict[str, torch.Tensor]:
    out = run.parent / f"{run.name}_moss"
    assert cli(["export", str(run), str(out), "--format", "moss-speech"]) == 0
    _, tensors, _ = read_folder(out)
    _, original, _ = read_folder(inputs["moss"])
    assert set(tensors) == set(original)
    return {n: t for n, t in tensors.items() if not torch.equal(t, original[n])}


def test_corpus_and_pass_through_tokenizer(inputs):
    run = _run(inputs, "full")
    dialogues = [json.loads(x) for x in (run / "corpus/dialogues.jsonl").read_text().splitlines()]
    assert len(dialogues) == 6 and dialogues[0]["turns"][0]["role"] == "system"
    assert "spoken" in dialogues[0]["turns"][0]["text"]  # MOSS's speech-output system prompt
    info = json.loads((run / "tokenizer/tokenizer.json").read_text())
    assert info["metrics"] == {"trained": False} and info["params"]["checkpoint"] == str(inputs["codec"])
    assert not (run / "tokenizer" / "checkpoints").exists()  # no training ran
    changed = _exported(inputs, run)
    assert any(n.startswith("model.shared_block.") for n in changed)
    assert any(n.startswith("model.audio_block.") for n in changed)
    assert (run / "export/trunk/config.json").is_file()  # the toolkit export's trunk is a MOSS folder
    assert json.loads((run / "export/trunk/config.json").read_text())["model_type"] == "moss_speech"


def test_speech_branch_only_keeps_the_text_path(inputs):
    run = _run(inputs, "speech_only", "stage_args.sft.trainable=[speech]")
    changed = _exported(inputs, run)
    assert changed and all(n.startswith(("model.audio_", "audio_lm_head")) for n in changed)


def test_lora_changes_only_adapted_linears(inputs):
    run = _run(inputs, "lora", "stage_args.sft.trainable=[speech]", "stage_args.sft.lora_rank=4")
    saved = json.loads((run / "sft/model.json").read_text())
    assert saved["contents"] == "full"
    changed = _exported(inputs, run)
    assert changed
    assert all(n.startswith("model.audio_block.") and n.endswith("_proj.weight") for n in changed)
