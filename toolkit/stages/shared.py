"""Glue the stages share: the corpus as audio batches, and what the three LM stages do.

The LM stages build the split model, its data, train it and save it: each stage folder ends
with ``model.safetensors`` + ``model.json`` (see :mod:`toolkit.persist.split_model`), next to
``checkpoints/last.ckpt`` and ``logs/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from toolkit.errors import ToolkitError
from toolkit.persist.split_model import load_into, save_split_model
from toolkit.speech_lm import data
from toolkit.speech_lm.module import OptimConfig, SplitLMModule
from toolkit.stages import StageContext


@dataclass
class LMStageParams:
    """Options every LM stage has (``stage_args.<stage>``)."""

    lr: float = 3e-4
    max_steps: int = 1000
    batch_tokens: int = 4096
    """Padded positions per batch (per device)."""
    warmup: int = 50
    weight_decay: float = 0.0
    min_lr_ratio: float = 0.1
    max_seq_len: int = 1024
    """Longer examples are dropped (with a count in ``data.json``)."""
    ckpt_every: int | None = None
    """Optimizer steps between training checkpoints (default: a quarter of max_steps)."""
    encode_batch_size: int = 16
    """Utterances per batch when encoding the corpus into speech codes."""
    tasks: dict[str, float] = field(default_factory=lambda: {"continuation": 0.5, "asr": 0.25, "tts": 0.25})
    """Weights of the pre-training sequence kinds (stage I and II), drawn per utterance with a
    seed of the stage's own."""
    targeted: list[str] = field(default_factory=lambda: ["asr", "tts"])
    """Kinds every entity-naming utterance gives (one example each) instead of a drawn one."""
    distill: float = 0.0
    """Weight of the cross-modal distillation loss (0: off): every spoken training question
    is also an S->T chat whose answer distributions must match the T->T chat's
    (:mod:`toolkit.speech_lm.distill`)."""
    hearing_ctc: float = 0.0
    """Weight of the hearing CTC loss (0: off): what the shared blocks receive at the speech
    positions of ASR / TTS examples must spell their transcript in text tokens, by cosine to
    the text embedding (:mod:`toolkit.speech_lm.hearing_ctc`)."""
    hearing_warmup: int = 0
    """Steps of the hearing CTC loss alone, before a fresh model's LM training (0: none):
    the speech input (embedding, code map, reader) learns to spell the training transcripts
    in batches of 32 utterances, with no trunk pass (:mod:`toolkit.speech_lm.hearing_warmup`)."""
    speaking_warmup: int = 0
    """Steps of text-to-speech on the speech branch alone (0: none): every transcribed training
    utterance read aloud (word by word where the tokenizer places its words), from split-point
    states computed once (:mod:`toolkit.speech_lm.speaking_warmup`)."""
    speaking_warmup_at: Literal["start", "end"] = "start"
    """When the speaking warm-up runs: before this stage's LM training, or after it (just before
    the model is saved), so the LM steps cannot overwrite the reading it learnt."""
    speaking_warmup_lr: float = 1e-3
    speaking_warmup_alone: bool = False
    """Speaking warm-up on each word alone (its text, then its codes; no sentence around it):
    a branch trained on whole sentences memorises them and says a name learnt in one sentence
    wrongly in another. Read back with ``stage_args.eval.read_by_word: alone``."""
    speaking_vocabulary: int = 0
    """Strings of the trunk's commonest words, spoken in one house voice, that the speaking
    warm-up reads besides the corpus (0: none; :mod:`toolkit.data.vocabulary`): a corpus grammar
    says a few hundred words, and a held-out sentence comes out wrong at the words never heard."""
    speaking_vocabulary_words: int = 5000
    """How many of the trunk tokenizer's commonest words those strings draw from."""
    frozen: list[str] = field(default_factory=list)
    """Parameter-name prefixes held fixed in this stage's LM training (after any hearing
    warm-up), e.g. ``[speech_embed., speech_reader.]``: a warmed-up reader keeps its spelling
    while the LM loss trains what reads it (speech adapters, speech branch)."""
    speech_init: Literal["random", "aligned"] = "random"
    """How a fresh speech embedding starts (a stage with ``init_from`` loads it instead):
    the splitter's random rows, or each code's mean text embedding over the training
    transcripts it is heard in (:mod:`toolkit.speech_lm.speech_init`)."""


def load_speech_tokenizer(ctx: StageContext) -> nn.Module:
    """The recipe's tokenizer with the weights the tokenizer stage trained."""
    from toolkit.persist.components import load_trained

    return load_trained(ctx.output("tokenizer"), "tokenizer")


def audio_data(ctx: StageContext, sample_rate: int, batch_seconds: float, max_seconds: float,
               num_workers: int):
    """The corpus as a set-up :class:`toolkit.data.datamodule.AudioDataModule` (train + val)."""
    from toolkit.data.datamodule import AudioDataModule
    from toolkit.data.manifest import corpus_manifest

    corpus = ctx.output("corpus")
    data = AudioDataModule(corpus_manifest(corpus), corpus, sample_rate, batch_seconds,
                           max_seconds=max_seconds, report_dir=ctx.work_dir,
                           num_workers=num_workers, seed=ctx.seed, check="header")
    data.setup()
    if len(data.datasets["train"]) == 0:
        raise ToolkitError(f"{corpus}: the corpus has no usable train utterances")
    return data


def check_codebook_size(recipe: dict[str, Any], key: str, codebook_size: int) -> None:
    """The one check of the codebook size: the trained tokenizer's ``codebook_size`` is the
    size everywhere, so a recipe's ``<key>.params.codebook_size`` (``splitter``, ``decoder``)
    must be absent or equal to it."""
    given = ((recipe.get(key) or {}).get("params") or {}).get("codebook_size")
    if given is not None and int(given) != int(codebook_size):
        raise ToolkitError(f"recipe error at {key}.params.codebook_size: {given} does not match "
                           f"the speech tokenizer's codebook of {codebook_size} codes")


def build_split_model(ctx, codebook_size: int, init_from: str | None) -> nn.Module:
    """Trunk -> split model (speech vocabulary from the tokenizer), then the weights of an
    earlier LM stage's output when ``init_from`` names one, or of a MOSS-Speech folder when it
    is the path of one."""
    check_codebook_size(ctx.recipe, "splitter", codebook_size)
    trunk = ctx.build("trunk")
    model = ctx.build("splitter", trunk=trunk, codebook_size=int(codebook_size))
    if model.text_tokenizer is None:
        raise ToolkitError("the trunk has no text tokenizer; LM stages need one to frame text")
    if init_from:
        from toolkit.formats.moss_speech import is_moss_folder, load_published_into

        if is_moss_folder(init_from):  # a MOSS-Speech checkpoint folder (e.g. an earlier fine-tune)
            load_published_into(model, init_from)
        else:
            load_into(model, ctx.output(init_from))
    return model


def speech_codes(ctx, tok: nn.Module, utterances: list[dict], batch_size: int):
    """The run's shared token cache (``.get(utt_id)``, ``utt_id in cache``): every corpus
    utterance encoded once, reused by all LM stages."""
    from toolkit.data.token_cache import build_token_cache

    corpus = ctx.output("corpus")
    return build_token_cache(tok, utterances, corpus, ctx.run_dir / "cache" / "speech_codes", batch_size)


def train_and_save(ctx, model: nn.Module, examples: list[dict], params: LMStageParams,
                   trainable: tuple[str, ...], contents: str, text_lr: float | None = None,
                   before_save: Callable[[nn.Module], Any] | None = None) -> None:
    """Fit ``model``'s ``trainable`` sides on ``examples`` and write the stage's model files
    (``before_save(model)`` first, e.g. to merge LoRA adapters into the weights)."""
    from toolkit.io import write_json
    from toolkit.training import fit

    examples, dropped = data.drop_long(examples, min(params.max_seq_len, model.config.max_position))
    write_json(ctx.work_dir / "data.json", {"examples": len(examples), "dropped_too_long": dropped,
                                            "target_tokens": sum(int((e["target_modality"] >= 0).sum())
                                                                 for e in examples)})
    pad = model.text_tokenizer.pad_id
    loader = data.make_loader(examples, model.tokens, params.batch_tokens, ctx.seed, pad_text_id=pad)
    optim = OptimConfig(lr=params.lr, text_lr=text_lr, weight_decay=params.weight_decay,
                        warmup=params.warmup, max_steps=params.max_steps,
                        min_lr_ratio=params.min_lr_ratio)
    module = SplitLMModule(model, optim, trainable, distill_weight=params.distill,
                           hearing_ctc=params.hearing_ctc, frozen=tuple(params.frozen))
    trainer = fit(module, loader, ctx.work_dir, lm_trainer_kwargs(ctx.recipe.get("trainer")),
                  max_steps=params.max_steps, ckpt_every=params.ckpt_every)
    if hasattr(model, "merge_code_map"):
        model.merge_code_map()
    if before_save is not None:
        before_save(model)
    if trainer.is_global_zero:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        save_split_model(model, ctx.work_dir, stage=ctx.name, contents=contents,
                         trunk_node=ctx.recipe.get("trunk"), splitter_node=ctx.recipe.get("splitter"),
                         metrics=metrics)


def lm_trainer_kwargs(trainer: dict | None) -> dict:
    """The recipe's trainer kwargs, adapted to the split model: batches are sharded by our own
    rank-aware sampler, and under DDP a rank whose batch needs only one branch leaves the
    other's parameters unused, so DDP must look for unused parameters."""
    kwargs = dict(trainer or {})
    kwargs.setdefault("use_distributed_sampler", False)
    if kwargs.get("strategy") in ("ddp", "ddp_spawn"):
        kwargs["strategy"] = f"{kwargs['strategy']}_find_unused_parameters_true"
    return kwargs


def encoded_utterances(ctx, tokenizer: nn.Module, params: LMStageParams):
    """``(utterances, cache)``: the corpus utterances whose audio ``tokenizer`` could encode,
    and the run's speech-code cache (``cache.get(utt_id) -> codes[n]``)."""
    utterances = corpus_rows(ctx, "utterances.jsonl")
    cache = speech_codes(ctx, tokenizer, utterances, params.encode_batch_size)
    return [u for u in utterances if str(u["id"]) in cache], cache  # unreadable audio is skipped


def transcribed_train(utterances: list[dict]) -> list[dict]:
    """The ``train`` split's utterances that have a transcript (what the warm-ups read)."""
    return [u for u in utterances if u.get("split", "train") == "train" and u.get("text")]


def pretraining_data(ctx, model: nn.Module, tokenizer: nn.Module, params: LMStageParams,
                     text_targets: str) -> list[dict]:
    """Stage I / II speech examples: every encoded training utterance, with a task draw of
    this stage's own (``"<seed>-<stage>"``). On a model that starts fresh, first its speech
    embedding from the training transcripts (``speech_init: aligned``) and the splitter's
    ``init_code_vectors`` hook with the tokenizer's code vectors, when both have them; on every
    model, its ``tie_speech_head`` hook with them."""
    utterances, cache = encoded_utterances(ctx, tokenizer, params)
    fresh = getattr(params, "init_from", None) is None
    train = transcribed_train(utterances)
    if params.speech_init == "aligned" and fresh:
        from toolkit.speech_lm.speech_init import init_aligned

        init_aligned(model, ((cache.get(u["id"]), u["text"]) for u in train))
    if fresh and hasattr(model, "init_code_vectors") and hasattr(tokenizer, "code_vectors"):
        model.init_code_vectors(tokenizer.code_vectors())
    tie_speech_head(model, tokenizer)
    if fresh and params.hearing_warmup > 0:
        warm_up(ctx, model, train, cache, params.hearing_warmup)
    if params.speaking_warmup > 0 and params.speaking_warmup_at == "start":
        from toolkit.stages.speaking import warm_up_speaking

        warm_up_speaking(ctx, model, tokenizer, train, cache, params)
    examples = data.pretraining_examples(utterances, cache.get, model.text_tokenizer, model.tokens,
                                         params.tasks, f"{ctx.seed}-{ctx.name}",
                                         text_targets=text_targets, targeted=params.targeted,
                                         spans_of=getattr(tokenizer, "word_spans", None))
    if params.distill > 0:
        corpus = Path(ctx.output("corpus"))
        examples += data.distillation_examples(utterances, corpus_rows(ctx, "qa.jsonl"), cache.get,
                                               model.text_tokenizer, model.tokens,
                                               data.system_prompts(corpus))
    return examples


def speaking_warmup_at_end(ctx, tokenizer: nn.Module, params: LMStageParams,
                           then: Callable[[nn.Module], Any] | None = None) -> Callable[[nn.Module], Any] | None:
    """A ``before_save`` hook for :func:`train_and_save`: ``then(model)`` (e.g. merging LoRA
    adapters), and after it the speaking warm-up where ``speaking_warmup_at`` is ``end``."""
    if params.speaking_warmup <= 0 or params.speaking_warmup_at != "end":
        return then

    def finish(model: nn.Module) -> None:
        from toolkit.stages.speaking import warm_up_speaking

        if then is not None:
            then(model)
        utterances, cache = encoded_utterances(ctx, tokenizer, params)
        warm_up_speaking(ctx, model, tokenizer, transcribed_train(utterances), cache, params)

    return finish


def tie_speech_head(model: nn.Module, tokenizer: nn.Module) -> None:
    """The splitter's ``tie_speech_head`` hook with the tokenizer's code vectors, when both have
    them (every LM stage, before anything trains)."""
    if hasattr(model, "tie_speech_head") and hasattr(tokenizer, "code_vectors"):
        model.tie_speech_head(tokenizer.code_vectors())


def warm_up(ctx, model: nn.Module, train: list[dict], cache, steps: int) -> None:
    """The hearing warm-up over the transcribed ``train`` utterances, with a progress bar and
    its final loss in ``hearing_warmup.json``."""
    from rich.progress import Progress

    from toolkit.io import write_json
    from toolkit.speech_lm.hearing_warmup import warm_up_hearing

    tok = model.text_tokenizer
    pairs = [(cache.get(u["id"]), tok.encode(u["text"])) for u in train]  # as ASR examples encode it
    with Progress(transient=True) as progress:
        task = progress.add_task("hearing warm-up", total=steps)
        loss = warm_up_hearing(model, pairs, steps, seed=ctx.seed,
                               on_step=lambda step, _: progress.update(task, completed=step))
    write_json(ctx.work_dir / "hearing_warmup.json", {"steps": steps, "utterances": len(pairs), "final_loss": loss})
    print(f"{ctx.name}: hearing warm-up, {steps} steps on {len(pairs)} utterances, CTC loss {loss:.3f}")


def corpus_rows(ctx: StageContext, name: str) -> list[dict]:
    """Rows of the corpus's ``name`` JSONL file; none when the corpus has no such file (a
    ``manifest`` or ``spoken_dialogues`` corpus has only some of them)."""
    from toolkit.io import read_jsonl

    path = Path(ctx.output("corpus")) / name
    return read_jsonl(path) if path.is_file() else []


__all__ = ["audio_data", "LMStageParams", "load_speech_tokenizer", "check_codebook_size", "build_split_model",
           "speech_codes", "train_and_save", "speaking_warmup_at_end", "lm_trainer_kwargs", "corpus_rows", "pretraining_data"]
