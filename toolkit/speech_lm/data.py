"""Corpus + speech codes -> training examples and resumable batches for the LM stages.

Reads the corpus stage's manifests (``utterances.jsonl``, ``dialogues.jsonl``, ``text.jsonl``)
and turns them into examples (:mod:`toolkit.speech_lm.sequences`):

- stage I: each training utterance becomes one of speech continuation / speech->text /
  text->speech, drawn with the ``tasks`` weights;
- stage II: the same plus text-only sequences making up ``text_share`` of the tokens;
- SFT: dialogues in their mode (s2s, s2t, t2s, t2t).

``codes_of(utt_id) -> LongTensor[n]`` supplies the speech codes (a TokenCache's ``get``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from toolkit.contracts import TextTokenizer
from toolkit.errors import ToolkitError
from toolkit.io import read_jsonl
from toolkit.speech_lm.layout import IGNORE, SpecialTokens
from toolkit.speech_lm.interleave import WordSpan
from toolkit.speech_lm.sequences import build_conversation, dialogue_turns, pretraining_example

Example = dict[str, Tensor]
CodesOf = Callable[[str], Tensor]
SpansOf = Callable[[Tensor, str], "list[WordSpan] | None"]


def system_prompts(corpus: Path) -> dict[str, str]:
    """Mode -> the system prompt the corpus's SFT dialogues of that mode open with (empty when
    the corpus has none), so questions are asked in the format SFT trained."""
    from toolkit.speech_lm.sequences import MODES

    out: dict[str, str] = {}
    path = Path(corpus) / "dialogues.jsonl"
    if not path.is_file():  # a corpus without dialogues (e.g. the manifest dataset's)
        return out
    for row in read_jsonl(path):
        first = (row.get("turns") or [{}])[0]
        if first.get("role") == "system" and row.get("mode") in MODES:
            out.setdefault(row["mode"], first.get("text") or "")
    return out


def distillation_examples(utterances: Sequence[dict], qa: Sequence[dict], codes_of: CodesOf,
                          tok: TextTokenizer, tokens: SpecialTokens, system: dict[str, str],
                          split: str = "train") -> list[Example]:
    """One pair per spoken question of ``split`` with a written answer: the student hears the
    question (S->T chat), the teacher reads it (T->T chat); both answer in text
    (:mod:`toolkit.speech_lm.distill`)."""
    from toolkit.speech_lm.distill import distillation_example
    from toolkit.speech_lm.sequences import Turn

    answers = {q["id"]: q["answer"] for q in qa if q.get("answer")}
    out = []
    for utt in utterances:
        answer = answers.get(utt.get("qa"))
        if utt.get("split", "train") != split or utt.get("task") != "question" or not answer:
            continue
        student, teacher = [], []
        for mode, turns in (("s2t", student), ("t2t", teacher)):
            if system.get(mode):
                turns.append(Turn("system", text=system[mode]))
        student += [Turn("user", codes=codes_of(utt["id"])), Turn("assistant", text=answer)]
        teacher += [Turn("user", text=utt["text"]), Turn("assistant", text=answer)]
        out.append(distillation_example(student, teacher, tok, tokens))
    return out


def pretraining_examples(utterances: Sequence[dict], codes_of: CodesOf, tok: TextTokenizer,
                         tokens: SpecialTokens, tasks: dict[str, float], seed: int | str,
                         text_targets: str = "all", split: str = "train",
                         targeted: Sequence[str] = (), spans_of: SpansOf | None = None) -> list[Example]:
    """One example per utterance of ``split``, its kind drawn from ``tasks`` (weights of
    ``continuation``, ``asr``, ``tts``, ``tts_words``) with ``seed`` (give each stage its own,
    so an utterance is not paired with its text in no stage). An utterance that names an
    entity (an ``entity`` field) instead gives one example of each kind in ``targeted``: every
    name is both heard (ASR) and said (TTS).

    ``tts_words`` needs ``spans_of(codes, text)`` (word spans, or None where the words
    cannot be placed: that utterance gives a plain ``tts`` example instead)."""
    kinds = [k for k, w in tasks.items() if w > 0]
    if not kinds:
        raise ToolkitError("stage tasks: give at least one of continuation, asr, tts a positive weight")
    weights = [tasks[k] for k in kinds]
    rng = random.Random(seed)
    out = []
    for utt in utterances:
        if utt.get("split", "train") != split:
            continue
        chosen = list(targeted) if targeted and utt.get("entity") else [rng.choices(kinds, weights)[0]]
        for kind in chosen:
            codes, text, spans = codes_of(utt["id"]), utt.get("text", ""), None
            if kind == "tts_words":
                if spans_of is None:
                    raise ToolkitError("task tts_words needs a speech tokenizer that places words in its "
                                       "codes (a word_spans method; whisper_vq with ctc_labels: phonemes)")
                spans = spans_of(codes, text)
                kind = "tts_words" if spans else "tts"
            out.append(pretraining_example(kind, tok, tokens, codes=codes, text=text,
                                           text_targets=text_targets, spans=spans))
    return out


def text_examples(texts: Sequence[str], tok: TextTokenizer, tokens: SpecialTokens) -> list[Example]:
    """Text-only sequences (every token a text target)."""
    return [pretraining_example("text", tok, tokens, text=t) for t in texts if t.strip()]


def mix_text(examples: list[Example], text: list[Example], share: float, seed: int) -> list[Example]:
    """Add text-only examples (cycling through ``text`` in a seeded order) until they hold
    about ``share`` of all target tokens."""
    if not 0.0 <= share < 1.0:
        raise ToolkitError(f"text_share must be in [0, 1), got {share}")
    if share == 0.0 or not text:
        return list(examples)
    speech_tokens = sum(_targets(e) for e in examples)
    wanted = share / (1 - share) * speech_tokens
    order = list(range(len(text)))
    random.Random(seed).shuffle(order)
    mixed, got, i = list(examples), 0, 0
    while got < wanted:
        e = text[order[i % len(order)]]
        mixed.append(e)
        got += _targets(e)
        i += 1
    return mixed


def _targets(e: Example) -> int:
    return int((e["target_modality"] != IGNORE).sum())


def sft_examples(dialogues: Sequence[dict], codes_of: CodesOf, tok: TextTokenizer,
                 tokens: SpecialTokens, modes: Sequence[str], split: str = "train") -> list[Example]:
    """Chat examples from corpus dialogues of ``split`` whose mode is in ``modes``."""
    out = []
    for d in dialogues:
        if d.get("split", "train") != split or d["mode"] not in modes:
            continue
        out.append(build_conversation(dialogue_turns(d["turns"], d["mode"], codes_of), tok, tokens))
    return out


def drop_long(examples: list[Example], max_len: int) -> tuple[list[Example], int]:
    """Examples of at most ``max_len`` positions, and how many were dropped."""
    kept = [e for e in examples if len(e["input_ids"]) <= max_len and _targets(e) > 0]
    return kept, len(examples) - len(kept)


class ExampleDataset(Dataset):
    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def collate(examples: list[Example], tokens: SpecialTokens, pad_text_id: int = 0) -> dict[str, Tensor]:
    """Right-pad examples into ``input_ids[B,L,2]``, ``labels[B,L]``, ``target_modality[B,L]``
    (plus ``transcript[B,T]`` / ``transcript_lengths[B]`` when some example has a transcript).

    Padding comes after every real token, so causal attention needs no mask."""
    longest = max(len(e["input_ids"]) for e in examples)
    batch = len(examples)
    ids = torch.empty(batch, longest, 2, dtype=torch.long)
    ids[..., 0], ids[..., 1] = pad_text_id, tokens.speech_pad
    labels = torch.zeros(batch, longest, dtype=torch.long)
    target = torch.full((batch, longest), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], target[i, :n] = e["input_ids"], e["labels"], e["target_modality"]
    batch = {"input_ids": ids, "labels": labels, "target_modality": target}
    if any("transcript" in e for e in examples):
        batch.update(_transcripts(examples))
    if any("teacher_ids" in e for e in examples):
        batch.update(_teacher_grids(examples, tokens, pad_text_id, longest))
    return batch


def _transcripts(examples: list[Example]) -> dict[str, Tensor]:
    """``transcript[B,T]`` (zero-padded) and ``transcript_lengths[B]`` (0: the example has none)."""
    lengths = torch.tensor([len(e.get("transcript", ())) for e in examples], dtype=torch.long)
    grid = torch.zeros(len(examples), max(int(lengths.max()), 1), dtype=torch.long)
    for i, e in enumerate(examples):
        grid[i, : lengths[i]] = e.get("transcript", torch.zeros(0, dtype=torch.long))
    return {"transcript": grid, "transcript_lengths": lengths}


def _teacher_grids(examples: list[Example], tokens: SpecialTokens, pad_text_id: int,
                   longest: int) -> dict[str, Tensor]:
    """``teacher_ids[B,Lt,2]``, ``teacher_mask[B,Lt]`` and ``distill_mask[B,L]`` of the
    distillation pairs in a batch (rows of other examples distil nothing)."""
    batch, span = len(examples), max(len(e.get("teacher_ids", ())) for e in examples)
    ids = torch.empty(batch, span, 2, dtype=torch.long)
    ids[..., 0], ids[..., 1] = pad_text_id, tokens.speech_pad
    teacher = torch.zeros(batch, span, dtype=torch.bool)
    student = torch.zeros(batch, longest, dtype=torch.bool)
    for i, e in enumerate(examples):
        if "teacher_ids" in e:
            n = len(e["teacher_ids"])
            ids[i, :n], teacher[i, :n] = e["teacher_ids"], e["teacher_mask"]
            student[i, : len(e["distill_mask"])] = e["distill_mask"]
    return {"teacher_ids": ids, "teacher_mask": teacher, "distill_mask": student}


class RankAwareBatches:
    """A token-budget batch sampler whose rank and world size are read when iteration starts
    (after the Trainer set up distributed training), with ``state_dict`` for exact resume."""

    def __init__(self, lengths: list[int], max_tokens: int, seed: int, shuffle: bool = True) -> None:
        self.lengths, self.max_tokens, self.seed, self.shuffle = lengths, max_tokens, seed, shuffle
        self._inner = None
        self._pending_state: dict | None = None

    def inner(self):
        if self._inner is None:
            from toolkit.data.sampler import TokenBudgetBatchSampler

            rank, world = 0, 1
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            self._inner = TokenBudgetBatchSampler(self.lengths, self.max_tokens, seed=self.seed,
                                                  shuffle=self.shuffle, rank=rank, world_size=world)
            if self._pending_state is not None:
                self._inner.load_state_dict(self._pending_state)
        return self._inner

    def __iter__(self):
        return iter(self.inner())

    def __len__(self) -> int:
        return len(self.inner())

    def set_epoch(self, epoch: int) -> None:
        self.inner().set_epoch(epoch)

    def state_dict(self) -> dict:
        return self.inner().state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._pending_state = state
        if self._inner is not None:
            self._inner.load_state_dict(state)


class SamplerStateLoader(DataLoader):
    """A DataLoader whose data position, saved and restored with the training checkpoint, is
    its batch sampler's state (:class:`RankAwareBatches`: epoch and batches handed out).

    That is the position of the batches consumed because the LM stages load without workers
    (nothing is prefetched past the step). The audio stages, whose workers prefetch, use
    :class:`toolkit.data.loaders.CountingLoader`, which counts consumed batches itself; it would
    read the sampler's position when built, before the Trainer set up DDP, which
    :class:`RankAwareBatches` must wait for to read its rank. Both give the same batch order.
    """

    def state_dict(self) -> dict:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


def make_loader(examples: list[Example], tokens: SpecialTokens, batch_tokens: int, seed: int,
                shuffle: bool = True, pad_text_id: int = 0) -> SamplerStateLoader:
    """Batches of at most ``batch_tokens`` padded positions, sharded over ranks."""
    if not examples:
        raise ToolkitError("no training examples: the corpus split is empty or every sequence "
                           "was longer than max_seq_len")
    lengths = [len(e["input_ids"]) for e in examples]
    if max(lengths) > batch_tokens:
        raise ToolkitError(f"batch_tokens={batch_tokens} is smaller than the longest sequence "
                           f"({max(lengths)}); raise batch_tokens or lower max_seq_len")
    sampler = RankAwareBatches(lengths, batch_tokens, seed, shuffle)
    return SamplerStateLoader(ExampleDataset(examples), batch_sampler=sampler,
                              collate_fn=lambda b: collate(b, tokens, pad_text_id))


__all__ = ["system_prompts", "distillation_examples", "pretraining_examples", "text_examples", "mix_text", "sft_examples",
           "drop_long", "collate", "make_loader", "SamplerStateLoader", "RankAwareBatches"]
