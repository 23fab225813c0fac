"""Stage II: everything trainable, the text side at its own (lower) learning rate, with a share
of text-only data mixed in to keep text ability. Writes ``model.safetensors`` (full) + ``model.json``."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.speech_lm import data
from toolkit.stages.shared import (LMStageParams, build_split_model, corpus_rows,
                                            load_speech_tokenizer, pretraining_data,
                                   speaking_warmup_at_end, train_and_save)
from toolkit.stages import StageContext, stage


@dataclass
class Stage2Params(LMStageParams):
    lr: float = 1e-4
    text_lr: float = 1e-5
    """Learning rate of the text side (text embedding, shared blocks, text branch)."""
    text_share: float = 0.3
    """Fraction of target tokens that come from text-only sequences."""
    init_from: str | None = "stage1"
    """The LM stage whose model this one continues; null starts from the plain split (the
    "no frozen stage I" baseline of the evaluation)."""


TEXT_SPLITS = ("train", "text_only")
"""Text-only data: text_only facts are trained in text (never in speech) by design."""


@stage("stage2", params=Stage2Params, needs=("corpus", "tokenizer"))
def run(ctx: StageContext) -> None:
    """Stage II: train all parameters on speech, paired and text-only data."""
    p: Stage2Params = ctx.params
    tokenizer = load_speech_tokenizer(ctx)
    model = build_split_model(ctx, tokenizer.codebook_size, init_from=p.init_from)
    examples = pretraining_data(ctx, model, tokenizer, p, text_targets="all")
    texts = [r["text"] for r in corpus_rows(ctx, "text.jsonl") if r.get("split", "train") in TEXT_SPLITS]
    text = data.text_examples(texts, model.text_tokenizer, model.tokens)
    examples = data.mix_text(examples, text, p.text_share, ctx.seed)
    train_and_save(ctx, model, examples, p, trainable=("text", "speech"), contents="full",
                   text_lr=p.text_lr, before_save=speaking_warmup_at_end(ctx, tokenizer, p))
