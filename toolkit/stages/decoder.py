"""The ``decoder`` stage: train the recipe's decoder plugin on codes of the trained tokenizer.

The corpus is encoded once with the ``tokenizer`` stage's tokenizer (in the run's shared token
cache, ``<run>/cache/speech_codes``, which the LM stages read too); each training batch is cropped at
code boundaries to ``crop_seconds`` and given ``batch["codes"]``. Outputs:
``decoder.safetensors`` + ``decoder.json``; ``toolkit.persist.components.load_trained(folder,
"decoder")`` gets the decoder back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from toolkit.errors import ToolkitError
from toolkit.stages import StageContext, stage
from toolkit.persist.components import load_trained, needs_training, save_component
from toolkit.stages.shared import audio_data, check_codebook_size, corpus_rows, speech_codes


@dataclass
class DecoderStageParams:
    max_steps: int = 600
    lr: float = 1e-3
    warmup_steps: int = 30
    batch_seconds: float = 48.0
    crop_seconds: float = 3.0
    """Training crops (at code boundaries) of at most this length."""
    max_seconds: float = 20.0
    num_workers: int = 0


def corpus_codes(ctx: StageContext, tokenizer: Any) -> dict[str, torch.Tensor]:
    """Codes of every corpus utterance by id, from the run's shared token cache (the one the
    LM stages read), so the corpus is encoded once per tokenizer however many stages use it."""
    cache = speech_codes(ctx, tokenizer, corpus_rows(ctx, "utterances.jsonl"), batch_size=16)
    return {uid: cache.get(uid) for uid in cache.ids()}


class CropWithCodes:
    """Batch transform: random crops at code boundaries, with ``codes[B,L]`` added."""

    def __init__(self, codes: dict[str, torch.Tensor], samples_per_code: int, crop_codes: int,
                 seed: int) -> None:
        self.codes, self.spc, self.crop = codes, samples_per_code, max(1, crop_codes)
        self.rng = random.Random(seed)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [self.codes[uid] for uid in batch["id"]]
        n_codes = [min(len(c), int(n) // self.spc) for c, n in zip(rows, batch["lengths"])]
        width = max(1, min(self.crop, max(n_codes)))
        wav = torch.zeros(len(rows), width * self.spc)
        codes = torch.zeros(len(rows), width, dtype=torch.long)
        lengths = torch.zeros(len(rows), dtype=torch.long)
        for i, (row, n) in enumerate(zip(rows, n_codes)):
            start = self.rng.randint(0, max(0, n - width))
            take = min(width, n - start)
            codes[i, :take] = row[start: start + take]
            wav[i, : take * self.spc] = batch["wav"][i, start * self.spc: (start + take) * self.spc]
            lengths[i] = take * self.spc
        return {**batch, "wav": wav, "lengths": lengths, "codes": codes}


@stage("decoder", params=DecoderStageParams, needs=("corpus", "tokenizer"))
def run_decoder(ctx: StageContext) -> None:
    """Train the recipe's ``decoder`` plugin to speak the trained tokenizer's codes."""
    from toolkit.registry import node_parts
    from toolkit.training import fit
    from toolkit.training.component import ComponentModule

    p: DecoderStageParams = ctx.params
    torch.manual_seed(ctx.seed)
    tokenizer = load_trained(ctx.output("tokenizer"), "tokenizer")
    check_codebook_size(ctx.recipe, "decoder", tokenizer.codebook_size)
    decoder = ctx.build("decoder", codebook_size=tokenizer.codebook_size,
                        frame_rate=float(tokenizer.frame_rate))
    if decoder.sample_rate != tokenizer.sample_rate:
        raise ToolkitError(f"recipe error at decoder: sample rate {decoder.sample_rate} differs "
                           f"from the tokenizer's {tokenizer.sample_rate}")
    if not needs_training(decoder):  # pretrained or rule-based: saved as built, no training
        name, _ = node_parts(ctx.recipe["decoder"], "decoder")
        save_component(ctx.work_dir, "decoder", name, decoder.params, decoder.eval(), {"trained": False})
        return
    if hasattr(decoder, "init_code_vectors") and hasattr(tokenizer, "code_vectors"):
        decoder.init_code_vectors(tokenizer.code_vectors())  # a resumed run loads over this
    data = audio_data(ctx, decoder.sample_rate, p.batch_seconds, p.max_seconds, p.num_workers)
    codes = corpus_codes(ctx, tokenizer)
    spc = round(decoder.sample_rate / tokenizer.frame_rate)
    prepare = CropWithCodes(codes, spc, int(p.crop_seconds * tokenizer.frame_rate), ctx.seed)
    module = ComponentModule(decoder, p.lr, p.max_steps, p.warmup_steps, prepare=prepare)
    trainer = fit(module, data.train_dataloader(), ctx.work_dir, ctx.recipe.get("trainer") or {},
                  max_steps=p.max_steps)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    name, _ = node_parts(ctx.recipe["decoder"], "decoder")
    save_component(ctx.work_dir, "decoder", name, decoder.params, decoder, metrics)
