"""The ``tokenizer`` stage: train the recipe's speech tokenizer plugin on the corpus.

Outputs in the stage folder: ``tokenizer.safetensors`` (the trained weights: trainable
parameters and buffers; frozen pretrained weights come back when the plugin is built) and
``tokenizer.json`` (``{"plugin", "params", "metrics"}``). Get the trained tokenizer back with
:func:`load_trained` (a run folder or the stage folder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toolkit.errors import ToolkitError
from toolkit.io import read_json, save_tensors, write_json
from toolkit.stages import StageContext, stage


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


def corpus_manifest(corpus_dir: Path) -> Path:
    """The utterance manifest of a ``corpus`` stage folder."""
    listing = corpus_dir / "manifests.json"
    if listing.is_file():
        names = read_json(listing)
        rel = names.get("utterances") or next(iter(names.values()), None)
        if rel:
            path = Path(rel)
            return path if path.is_absolute() else corpus_dir / path
    path = corpus_dir / "utterances.jsonl"
    if not path.is_file():
        raise ToolkitError(f"{corpus_dir}: no utterances.jsonl (is it a corpus stage folder?)")
    return path


def audio_data(ctx: StageContext, sample_rate: int, batch_seconds: float, max_seconds: float,
               num_workers: int):
    """The corpus as a set-up :class:`toolkit.data.datamodule.AudioDataModule` (train + val)."""
    from toolkit.data.datamodule import AudioDataModule

    corpus = ctx.output("corpus")
    data = AudioDataModule(corpus_manifest(corpus), corpus, sample_rate, batch_seconds,
                           max_seconds=max_seconds, report_dir=ctx.work_dir,
                           num_workers=num_workers, seed=ctx.seed, check="header")
    data.setup()
    if len(data.datasets["train"]) == 0:
        raise ToolkitError(f"{corpus}: the corpus has no usable train utterances")
    return data


def trained_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and all buffers (what training changed)."""
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    return {k: v for k, v in module.state_dict().items() if k not in frozen}


def needs_training(module: nn.Module) -> bool:
    """False for a component with nothing to train: ``trainable`` False (a pretrained folder)
    or no trainable parameter (rule-based). Its stage saves it as built (pass-through)."""
    return bool(getattr(module, "trainable", True)) and any(p.requires_grad for p in module.parameters())


def save_component(folder: Path, stem: str, kind_name: str, params: Any, module: nn.Module,
                   metrics: dict[str, Any]) -> None:
    from toolkit.params import to_dict

    save_tensors(folder / f"{stem}.safetensors", trained_state(module))
    write_json(folder / f"{stem}.json", {"plugin": kind_name, "params": to_dict(params),
                                         "metrics": metrics})


def load_component(folder: str | Path, stem: str, kind: str) -> Any:
    """Build plugin ``kind`` from ``folder/{stem}.json`` and load ``{stem}.safetensors``, with
    every check of :func:`toolkit.loading.load_component` (the one loader of saved things)."""
    from toolkit.loading import load_component as load

    return load(folder, stem, kind)


def load_trained(path: str | Path) -> Any:
    """The trained tokenizer of a run folder (``RUN/tokenizer``) or a tokenizer stage folder."""
    return load_component(path, "tokenizer", "tokenizer")


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
