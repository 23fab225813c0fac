"""The ``tokenizer`` stage: train the recipe's speech tokenizer plugin on the corpus.

Outputs in the stage folder: ``tokenizer.safetensors`` (the trained weights: trainable
parameters and buffers; frozen pretrained weights come back when the plugin is built) and
``tokenizer.json`` (``{"plugin", "params", "metrics"}``). Get the trained tokenizer back with
``toolkit.persist.components.load_trained(run_or_stage_folder, "tokenizer")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.persist.components import needs_training, save_component
from toolkit.stages import StageContext, stage
from toolkit.stages.shared import audio_data


@dataclass
class TokenizerStageParams:
    max_steps: int = 400
    lr: float = 3e-4
    warmup_steps: int = 30
    batch_seconds: float = 48.0
    """Padded audio seconds per batch."""
    max_seconds: float = 20.0
    """Utterances longer than this are left out of training."""
    num_workers: int = 0


@torch.no_grad()
def code_statistics(tokenizer: Any, loader: Any, max_batches: int = 20) -> dict[str, float]:
    """Perplexity and usage of the codebook over up to ``max_batches`` batches."""
    counts = torch.zeros(tokenizer.codebook_size)
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        codes, lengths = tokenizer.encode(batch["wav"], batch["lengths"])
        for row, n in zip(codes, lengths):
            counts += torch.bincount(row[:n], minlength=tokenizer.codebook_size).float()
    probs = counts / counts.sum().clamp(min=1)
    entropy = -(probs * probs.clamp(min=1e-10).log()).sum()
    return {"perplexity": math.exp(float(entropy)), "usage": float((counts > 0).float().mean()),
            "codes": int(counts.sum())}


@stage("tokenizer", params=TokenizerStageParams, needs=("corpus",))
def run_tokenizer(ctx: StageContext) -> None:
    """Train the recipe's tokenizer plugin and save it; a pretrained or rule-based one is saved
    as built.

    A component with nothing to train is recognised by :func:`needs_training`."""
    from rich.console import Console

    from toolkit.registry import node_parts
    from toolkit.training import fit
    from toolkit.training.component import ComponentModule

    p: TokenizerStageParams = ctx.params
    torch.manual_seed(ctx.seed)
    tokenizer = ctx.build("tokenizer")
    if not needs_training(tokenizer):  # pretrained or rule-based: saved as built, no training
        name, _ = node_parts(ctx.recipe["tokenizer"], "tokenizer")
        save_component(ctx.work_dir, "tokenizer", name, tokenizer.params, tokenizer.eval(), {"trained": False})
        return
    data = audio_data(ctx, tokenizer.sample_rate, p.batch_seconds, p.max_seconds, p.num_workers)
    if hasattr(tokenizer, "init_codebook"):  # a resumed run loads its trained codebook over this
        used = tokenizer.init_codebook(data.train_dataloader())
        Console(stderr=True).print(f"  codebook initialised by k-means on {used} vectors")
    module = ComponentModule(tokenizer, p.lr, p.max_steps, p.warmup_steps)
    fit(module, data.train_dataloader(), ctx.work_dir, ctx.recipe.get("trainer") or {},
        max_steps=p.max_steps)
    tokenizer.eval()
    metrics = code_statistics(tokenizer, data.val_dataloader() or data.train_dataloader())
    name, _ = node_parts(ctx.recipe["tokenizer"], "tokenizer")
    save_component(ctx.work_dir, "tokenizer", name, tokenizer.params, tokenizer, metrics)
