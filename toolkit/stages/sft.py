"""SFT: chat dialogues in the four modes (S->S, S->T, T->S, T->T); the assistant turns are the
targets. Writes ``model.safetensors`` (full) + ``model.json``."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.errors import ToolkitError
from toolkit.speech_lm import data
from toolkit.speech_lm.lora import TARGETS as LORA_TARGETS
from toolkit.speech_lm.sequences import MODES
from toolkit.stages.shared import (LMStageParams, build_split_model, corpus_rows, load_speech_tokenizer,
                                   speaking_warmup_at_end, speech_codes, tie_speech_head,
                                   train_and_save)
from toolkit.stages import StageContext, stage


@dataclass
class SftParams(LMStageParams):
    lr: float = 5e-5
    text_lr: float = 5e-6
    warmup: int = 20
    modes: list[str] = field(default_factory=lambda: list(MODES))
    init_from: str | None = "stage2"
    """The LM stage whose model this one starts from; null: the trunk and splitter as built
    (e.g. an imported MOSS-Speech checkpoint)."""
    trainable: list[str] = field(default_factory=lambda: ["text", "speech"])
    """Sides that train: ``[text, speech]`` (full), ``[speech]`` (speech branch and embedding
    only), or the sides that get LoRA adapters when ``lora_rank`` > 0."""
    lora_rank: int = 0
    """> 0: train LoRA adapters (``peft``) of this rank on the ``trainable`` sides' attention
    and MLP linears instead of the weights; merged into the weights before saving."""
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))


@stage("sft", params=SftParams, needs=("corpus", "tokenizer"))
def run(ctx: StageContext) -> None:
    """SFT: fine-tune on four-mode spoken dialogues."""
    p: SftParams = ctx.params
    bad = [m for m in p.modes if m not in MODES]
    if bad:
        raise ToolkitError(f"recipe error at stage_args.sft.modes: unknown mode '{bad[0]}'; "
                           f"modes: {', '.join(MODES)}")
    if p.speaking_warmup > 0 and p.speaking_warmup_at != "end":
        raise ToolkitError("recipe error at stage_args.sft.speaking_warmup_at: SFT has no pre-training "
                           "data to warm up before; set it to 'end' (after the SFT steps)")
    tok = load_speech_tokenizer(ctx)
    model = build_split_model(ctx, tok.codebook_size, init_from=p.init_from)
    tie_speech_head(model, tok)
    utterances = corpus_rows(ctx, "utterances.jsonl")
    cache = speech_codes(ctx, tok, utterances, p.encode_batch_size)
    dialogues = [d for d in corpus_rows(ctx, "dialogues.jsonl")
                 if all(not t.get("utt") or str(t["utt"]) in cache for t in d["turns"])]
    examples = data.sft_examples(dialogues, cache.get, model.text_tokenizer, model.tokens, p.modes)
    finish = None
    if p.lora_rank > 0:
        from toolkit.speech_lm.lora import add_lora, merge_lora

        add_lora(model, tuple(p.trainable), p.lora_rank, p.lora_alpha, p.lora_dropout, tuple(p.lora_targets))
        finish = merge_lora
    train_and_save(ctx, model, examples, p, trainable=tuple(p.trainable), contents="full",
                   text_lr=p.text_lr, before_save=speaking_warmup_at_end(ctx, tok, p, then=finish))
