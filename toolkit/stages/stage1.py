"""Stage I: frozen pre-training. The text side (text embedding, shared blocks, text branch and
head) is frozen; the speech embedding, speech branch and speech head learn from speech
continuation and speech<->text pairs. Writes ``model.safetensors`` (speech side) + ``model.json``."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.speech_lm import data
from toolkit.speech_lm.stage_runner import (LMStageParams, build_split_model, corpus_rows,
                                            load_speech_tokenizer, speech_codes, train_and_save)
from toolkit.stages import StageContext, stage


@dataclass
class Stage1Params(LMStageParams):
    pass


@stage("stage1", params=Stage1Params, needs=("corpus", "tokenizer"))
def run(ctx: StageContext) -> None:
    """Stage I: train the speech embedding, branch and head on a frozen text trunk."""
    p: Stage1Params = ctx.params
    tok = load_speech_tokenizer(ctx)
    model = build_split_model(ctx, tok.codebook_size, init_from=None)
    utterances = corpus_rows(ctx, "utterances.jsonl")
    cache = speech_codes(ctx, tok, utterances, p.encode_batch_size)
    utterances = [u for u in utterances if str(u["id"]) in cache]  # unreadable audio is skipped
    # A text target that only follows text trains nothing while the text side is frozen.
    examples = data.pretraining_examples(utterances, cache.get, model.text_tokenizer, model.tokens,
                                         p.tasks, ctx.seed, text_targets="after_speech")
    train_and_save(ctx, model, examples, p, trainable=("speech",), contents="speech_side")
