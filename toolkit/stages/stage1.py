"""Stage I: frozen pre-training. The text side (text embedding, shared blocks, text branch and
head) is frozen; the speech embedding, speech branch and speech head learn from speech
continuation and speech<->text pairs. Writes ``model.safetensors`` (speech side) + ``model.json``."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.stages.shared import (LMStageParams, build_split_model, load_speech_tokenizer,
                                            pretraining_data, speaking_warmup_at_end, train_and_save)
from toolkit.stages import StageContext, stage


@dataclass
class Stage1Params(LMStageParams):
    pass


@stage("stage1", params=Stage1Params, needs=("corpus", "tokenizer"))
def run(ctx: StageContext) -> None:
    """Stage I: train the speech embedding, branch and head on a frozen text trunk."""
    p: Stage1Params = ctx.params
    tokenizer = load_speech_tokenizer(ctx)
    model = build_split_model(ctx, tokenizer.codebook_size, init_from=None)
    # A text target that only follows text trains nothing while the text side is frozen.
    examples = pretraining_data(ctx, model, tokenizer, p, text_targets="after_speech")
    train_and_save(ctx, model, examples, p, trainable=("speech",), contents="speech_side",
                   before_save=speaking_warmup_at_end(ctx, tokenizer, p))
