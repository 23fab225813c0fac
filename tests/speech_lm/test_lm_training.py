"""Short stage I / II runs on a tiny trunk: frozen text path, falling speech loss, saving."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from toolkit.errors import ToolkitError
from toolkit.speech_lm import data
from toolkit.speech_lm.module import OptimConfig, SplitLMModule
from toolkit.persist.split_model import load_into, save_split_model
from toolkit.stages.shared import lm_trainer_kwargs
from toolkit.training import fit

from speech_lm_helpers import synthetic_codes, tiny_split

TRAINER = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "log_every_n_steps": 1}


def corpus(n=24):
    codes = synthetic_codes(n)
    utts = [{"id": k, "text": f"utterance {i}", "split": "train"} for i, k in enumerate(codes)]
    return utts, codes


def examples_for(model, stage: str, seed=0):
    utts, codes = corpus()
    tok = model.text_tokenizer
    ex = data.pretraining_examples(utts, codes.__getitem__, tok, model.tokens,
                                   {"continuation": 0.6, "asr": 0.2, "tts": 0.2}, seed,
                                   text_targets="after_speech" if stage == "stage1" else "all")
    if stage == "stage2":
        texts = data.text_examples([f"plain text number {i}" for i in range(10)], tok, model.tokens)
        ex = data.mix_text(ex, texts, 0.3, seed)
    return ex


def text_probe(model):
    ids = torch.randint(0, 250, (2, 16), generator=torch.Generator().manual_seed(5))
    grid = torch.stack([ids, torch.full_like(ids, model.tokens.speech_pad)], -1)
    with torch.no_grad():
        return model(grid, branches=("text",)).text_logits


def speech_losses(work_dir: Path) -> list[float]:
    with open(work_dir / "logs" / "csv" / "metrics.csv") as fh:
        return [float(r["train/speech_loss"]) for r in csv.DictReader(fh) if r.get("train/speech_loss")]


def train(model, stage, tmp_path, steps=30, lr=3e-3, **trainer):
    ex = examples_for(model, stage)
    loader = data.make_loader(ex, model.tokens, 256, seed=0, pad_text_id=model.text_tokenizer.pad_id)
    sides = ("speech",) if stage == "stage1" else ("text", "speech")
    module = SplitLMModule(model, OptimConfig(lr=lr, text_lr=lr / 10, warmup=3, max_steps=steps), sides)
    fit(module, loader, tmp_path, lm_trainer_kwargs({**TRAINER, **trainer}), max_steps=steps)
    return speech_losses(tmp_path)


def test_stage1_keeps_text_path_bit_identical_and_learns_speech(tmp_path):
    torch.manual_seed(0)
    _, model = tiny_split()
    before = text_probe(model)
    text_state = {k: v.clone() for k, v in model.state_dict().items()
                  if not k.startswith(("speech_embed", "branches.speech"))}
    losses = train(model, "stage1", tmp_path)
    assert torch.equal(text_probe(model), before)
    for k, v in model.state_dict().items():
        if k in text_state:
            assert torch.equal(v, text_state[k]), k
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    # frozen text side: no weight gradients were ever allocated
    assert all(p.grad is None for _, p in model.parameter_groups()["text"])

    # save (speech side only) -> load into a fresh split of the same trunk: same model
    save_split_model(model, tmp_path / "out", stage="stage1", contents="speech_side",
                     trunk_node=None, splitter_node=None)
    _, fresh = tiny_split()
    load_into(fresh, tmp_path / "out")
    grid = torch.randint(0, 40, (1, 10, 2))
    grid[..., 0] = model.tokens.modality_pad
    with torch.no_grad():
        assert torch.equal(fresh(grid).speech_logits, model(grid).speech_logits)


def test_stage2_trains_both_sides_with_their_own_learning_rates(tmp_path):
    _, model = tiny_split()
    before = text_probe(model)
    losses = train(model, "stage2", tmp_path, steps=12)
    assert not torch.equal(text_probe(model), before)
    assert losses[-1] < losses[0]
    save_split_model(model, tmp_path / "out", stage="stage2", contents="full",
                     trunk_node=None, splitter_node=None)
    _, fresh = tiny_split(seed=3)  # different random trunk: every tensor must come from the file
    load_into(fresh, tmp_path / "out")
    assert torch.equal(text_probe(fresh), text_probe(model))


def test_frozen_prefixes_hold_part_of_a_training_side(tmp_path):
    _, model = tiny_split()
    embed = model.speech_embed.weight.detach().clone()
    branch = {k: v.clone() for k, v in model.branches["speech"].state_dict().items()}
    ex = examples_for(model, "stage1")
    loader = data.make_loader(ex, model.tokens, 256, seed=0, pad_text_id=model.text_tokenizer.pad_id)
    module = SplitLMModule(model, OptimConfig(lr=3e-3, warmup=1, max_steps=5), ("speech",),
                           frozen=("speech_embed.",))
    fit(module, loader, tmp_path, lm_trainer_kwargs(TRAINER), max_steps=5)
    assert torch.equal(model.speech_embed.weight, embed)
    assert any(not torch.equal(v, branch[k]) for k, v in model.branches["speech"].state_dict().items())


def test_a_frozen_prefix_that_names_nothing_is_one_clear_error():
    _, model = tiny_split()
    with pytest.raises(ToolkitError, match="frozen: 'speech_reeder.' names no parameter"):
        SplitLMModule(model, OptimConfig(), ("speech",), frozen=("speech_reeder.",))
