"""An LM stage's speaking warm-up (``stage_args.<stage>.speaking_warmup: N``): the stage's model
reads its transcribed training utterances aloud (and, with ``speaking_vocabulary: N``, N strings
of common words in one house voice), trained on the speech branch alone
(:mod:`toolkit.speech_lm.speaking_warmup`), before the stage's LM training starts or, with
``speaking_warmup_at: end``, after it."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from toolkit.stages import StageContext


def branch_precision(ctx: StageContext) -> torch.dtype | None:
    """bf16 autocast where the recipe's trainer precision (``auto`` resolved) is a bf16 one."""
    from toolkit.machine import resolve_precision

    trainer = ctx.recipe.get("trainer") or {}
    precision, _ = resolve_precision(trainer.get("precision", "32-true"), trainer.get("accelerator", "cpu"))
    return torch.bfloat16 if "bf16" in str(precision) else None


def reading_examples(model: nn.Module, train: list[dict], cache, spans_of: Callable | None,
                     alone: bool = False) -> tuple[list[dict], int]:
    """A text-to-speech example of every ``train`` utterance: word by word (``tts_words``) where
    ``spans_of(codes, text)`` places its words, whole (``tts``) elsewhere; and how many are
    word by word. ``alone``: a placed utterance gives one example per word instead, the word's
    text then its codes, with no sentence around it."""
    from toolkit.speech_lm.sequences import pretraining_example, words_alone

    out, by_word = [], 0
    tok, tokens = model.text_tokenizer, model.tokens
    for u in train:
        codes = torch.as_tensor(cache.get(u["id"]), dtype=torch.long)
        spans = spans_of(codes, u["text"]) if spans_of is not None else None
        by_word += bool(spans)
        if spans and alone:
            out += words_alone(tok, tokens, spans, codes)
        else:
            out.append(pretraining_example("tts_words" if spans else "tts", tok, tokens, codes=codes,
                                           text=u["text"], spans=spans))
    return out, by_word


def vocabulary_examples(ctx: StageContext, model: nn.Module, tokenizer: nn.Module, params) -> tuple[list[dict], int]:
    """Reading examples of ``params.speaking_vocabulary`` strings of the trunk's commonest words
    (:mod:`toolkit.data.vocabulary`), spoken under ``RUN/cache/speaking_vocabulary`` and encoded
    into the run's speech-code cache (both reused by later stages), and how many strings."""
    from toolkit.data.token_cache import build_token_cache
    from toolkit.data.vocabulary import vocabulary_utterances

    root = ctx.run_dir / "cache" / "speaking_vocabulary"
    rows = vocabulary_utterances(root, model.text_tokenizer, params.speaking_vocabulary,
                                 params.speaking_vocabulary_words, ctx.seed)
    cache = build_token_cache(tokenizer, rows, root, ctx.run_dir / "cache" / "speech_codes", params.encode_batch_size)
    rows = [u for u in rows if str(u["id"]) in cache]
    examples, _ = reading_examples(model, rows, cache, getattr(tokenizer, "word_spans", None),
                                   params.speaking_warmup_alone)
    return examples, len(rows)


def warm_up_speaking(ctx: StageContext, model: nn.Module, tokenizer: nn.Module, train: list[dict], cache,
                     params) -> None:
    """Train the speech branch of ``model`` on reading ``train`` (and ``params.speaking_vocabulary``
    strings of common words) aloud for ``params.speaking_warmup`` steps, with a progress bar; its
    numbers in ``speaking_warmup.json``."""
    from rich.progress import Progress

    from toolkit.io import write_json
    from toolkit.speech_lm.speaking_warmup import split_states, train_branch

    started, precision = time.time(), branch_precision(ctx)
    spans_of = getattr(tokenizer, "word_spans", None)
    examples, by_word = reading_examples(model, train, cache, spans_of, params.speaking_warmup_alone)
    extra, strings = vocabulary_examples(ctx, model, tokenizer, params) if params.speaking_vocabulary > 0 else ([], 0)
    examples += extra
    was_training = model.training
    model.eval()
    items = split_states(model, [e for e in examples if len(e["input_ids"]) <= params.max_seq_len], precision)
    steps = params.speaking_warmup
    with Progress(transient=True) as progress:
        task = progress.add_task("speaking warm-up", total=steps)
        loss = train_branch(model, items, steps, params.speaking_warmup_lr, precision, ctx.seed,
                            on_step=lambda step, _: progress.update(task, completed=step))
    model.train(was_training)
    alone = params.speaking_warmup_alone
    write_json(ctx.work_dir / "speaking_warmup.json", {
        "steps": steps, "utterances": len(train), "examples": len(items), "word_by_word": by_word,
        "words_alone": alone, "vocabulary_strings": strings, "vocabulary_examples": len(extra),
        "at": params.speaking_warmup_at, "final_loss": loss, "seconds": round(time.time() - started, 1)})
    print(f"{ctx.name}: speaking warm-up, {steps} steps on {len(items)} "
          f"{'words said alone' if alone else 'utterances'}"
          f"{f' ({by_word} utterances word by word)' if by_word else ''}"
          f"{f', {strings} strings of common words' if strings else ''}, speech CE {loss:.3f}")


__all__ = ["warm_up_speaking", "reading_examples", "vocabulary_examples", "branch_precision"]
