"""SFT: chat dialogues in the four modes (S->S, S->T, T->S, T->T); the assistant turns are the
targets. Writes ``model.safetensors`` (full) + ``model.json``."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.errors import ToolkitError
from toolkit.speech_lm import data
from toolkit.speech_lm.sequences import MODES
from toolkit.speech_lm.stage_runner import (LMStageParams, build_split_model, corpus_rows,
                                            load_speech_tokenizer, speech_codes, train_and_save)
from toolkit.stages import StageContext, stage


@dataclass
class SftParams(LMStageParams):
    lr: float = 5e-5
    text_lr: float = 5e-6
    warmup: int = 20
    modes: list[str] = field(default_factory=lambda: list(MODES))
    init_from: str = "stage2"
    trainable: list[str] = field(default_factory=lambda: ["text", "speech"])


@stage("sft", params=SftParams, needs=("corpus", "tokenizer"))
def run(ctx: StageContext) -> None:
    """SFT: fine-tune on four-mode spoken dialogues."""
    p: SftParams = ctx.params
    bad = [m for m in p.modes if m not in MODES]
    if bad:
        raise ToolkitError(f"recipe error at stage_args.sft.modes: unknown mode '{bad[0]}'; "
                           f"modes: {', '.join(MODES)}")
    tok = load_speech_tokenizer(ctx)
    model = build_split_model(ctx, tok.codebook_size, init_from=p.init_from)
    utterances = corpus_rows(ctx, "utterances.jsonl")
    cache = speech_codes(ctx, tok, utterances, p.encode_batch_size)
    dialogues = [d for d in corpus_rows(ctx, "dialogues.jsonl")
                 if all(not t.get("utt") or str(t["utt"]) in cache for t in d["turns"])]
    examples = data.sft_examples(dialogues, cache.get, model.text_tokenizer, model.tokens, p.modes)
    train_and_save(ctx, model, examples, p, trainable=tuple(p.trainable), contents="full",
                   text_lr=p.text_lr)
