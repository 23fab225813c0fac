"""Generation with a split model: a per-sequence modality state machine.

Each sequence is in text mode or speech mode. In text mode the text head picks the next text
token; ``sosp`` switches the sequence to speech mode. In speech mode the speech head picks a
code; ``eosp`` switches back. Speech ids past ``eosp`` are never sampled; ``eosp`` is blocked
until the current speech segment has ``min_new_tokens`` codes; a text end-of-turn id ends the
sequence. Each step runs the shared blocks plus only the branches whose modality some
unfinished sequence is in; a branch that sat out catches up on the stored split-point states
in one batched pass when it is next needed, so the result equals running both branches
every step (``run_all_branches=True``, kept as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from toolkit.errors import ToolkitError
from toolkit.sampling import SamplingParams, sample
from toolkit.speech_lm.layout import BRANCHES, SPEECH, TEXT, live_modality


@dataclass
class GenerationConfig:
    """Options of :func:`generate`; ``text`` / ``speech`` are the per-channel sampling params."""

    max_new_tokens: int = 256
    min_new_tokens: int = 0
    """Codes each speech segment must have before ``eosp`` may be sampled."""
    text: SamplingParams = field(default_factory=SamplingParams)
    speech: SamplingParams = field(default_factory=SamplingParams)
    stop_ids: tuple[int, ...] | None = None
    """Text ids that end the turn (default: the model's text tokenizer ``eos_ids``)."""
    stop_after_speech: bool = False
    """End a sequence when its first speech segment closes (``eosp``): reading text aloud."""
    run_all_branches: bool = False
    """Reference mode: run both branches at every step."""
    keep_logits: bool = False
    """Keep each step's logits of the sampled channel (for tests and analysis)."""


@dataclass
class Generated:
    """One sequence's output: ``ids[N,2]`` new grid positions, the text ids written (without
    ``sosp`` and the stop id), the speech segments (codes without ``eosp``), whether an
    end-of-turn id ended it, and optionally ``logits`` (one ``[V]`` tensor per step)."""

    ids: Tensor
    text_ids: list[int]
    speech: list[Tensor]
    stopped: bool
    logits: list[Tensor] = field(default_factory=list)


def _left_pad(prompts: list[Tensor], pad_row: Tensor) -> tuple[Tensor, Tensor]:
    longest = max(len(p) for p in prompts)
    grid = pad_row.expand(len(prompts), longest, 2).clone()
    mask = torch.zeros(len(prompts), longest, dtype=torch.long)
    for i, p in enumerate(prompts):
        grid[i, longest - len(p):] = p
        mask[i, longest - len(p):] = 1
    return grid, mask


def _initial_mode(prompt: Tensor, tokens) -> int:
    text_id, speech_id = int(prompt[-1, 0]), int(prompt[-1, 1])
    if text_id == tokens.sosp:
        return SPEECH
    if text_id == tokens.modality_pad and speech_id != tokens.eosp:
        return SPEECH
    return TEXT


def _branches(mode: Tensor, active: Tensor, run_all: bool) -> tuple[str, ...]:
    if run_all:
        return BRANCHES
    wanted = {int(m) for m in mode[active].tolist()}
    return tuple(b for b, m in zip(BRANCHES, (TEXT, SPEECH)) if m in wanted) or ("text",)


@torch.no_grad()
def generate(model: nn.Module, prompts: list[Tensor], config: GenerationConfig | None = None,
             generator: torch.Generator | None = None) -> list[Generated]:
    """Continue each prompt grid ``prompts[i][L_i, 2]`` (left-padded into one batch).

    A prompt ending in ``sosp`` (or inside a speech segment) starts in speech mode.
    """
    config = config or GenerationConfig()
    tokens = model.tokens
    stop_ids = config.stop_ids
    if stop_ids is None:
        tok = getattr(model, "text_tokenizer", None)
        stop_ids = tuple(tok.eos_ids) if tok is not None else ()
    if not prompts or any(p.ndim != 2 or p.shape[-1] != 2 or len(p) == 0 for p in prompts):
        raise ToolkitError("generate needs a non-empty list of prompt grids shaped [L, 2]")
    device = next(model.parameters()).device
    pad_row = torch.tensor([tokens.modality_pad, tokens.speech_pad])
    grid, mask = _left_pad([p.cpu() for p in prompts], pad_row)
    grid, mask = grid.to(device), mask.to(device)
    batch = len(prompts)
    mode = torch.tensor([_initial_mode(p, tokens) for p in prompts], device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    seg_len = torch.zeros(batch, dtype=torch.long, device=device)
    history = {TEXT: torch.empty(batch, 0, dtype=torch.long, device=device),
               SPEECH: torch.empty(batch, 0, dtype=torch.long, device=device)}
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    new_ids: list[Tensor] = []
    kept: list[list[Tensor]] = [[] for _ in range(batch)]
    caches = model.new_caches()
    out = model(grid, _branches(mode, ~done, config.run_all_branches), mask, caches)
    for _ in range(config.max_new_tokens):
        step = pad_row.to(device).repeat(batch, 1)
        chosen = torch.full((batch,), -1, dtype=torch.long, device=device)
        for modality, logits, params in ((TEXT, out.text_logits, config.text),
                                         (SPEECH, out.speech_logits, config.speech)):
            rows = ~done & (mode == modality)
            if not bool(rows.any()):
                continue
            scores = _allowed(logits[rows, -1].float(), modality, tokens, seg_len[rows], config)
            picked = sample(scores, history[modality][rows], params, generator)
            chosen[rows] = picked
            if config.keep_logits:
                for i, row in enumerate(rows.nonzero().flatten().tolist()):
                    kept[row].append(logits[row, -1].float().cpu())
        for modality in (TEXT, SPEECH):
            column = torch.where(mode == modality, chosen, torch.full_like(chosen, -1))
            history[modality] = torch.cat([history[modality], column[:, None]], 1)
        live = ~done
        is_text = live & (mode == TEXT)
        is_speech = live & (mode == SPEECH)
        step[is_text, 0] = chosen[is_text]
        step[is_speech, 0] = tokens.modality_pad
        step[is_speech, 1] = chosen[is_speech]
        step[~live] = torch.tensor([tokens.modality_pad, tokens.speech_pad], device=device)
        new_ids.append(torch.where(live[:, None], step, torch.full_like(step, -1)))
        seg_len = torch.where(is_speech, seg_len + 1, seg_len)
        to_speech = is_text & (chosen == tokens.sosp)
        to_text = is_speech & (chosen == tokens.eosp)
        done = done | (is_text & torch.isin(chosen, stop))
        if config.stop_after_speech:
            done = done | to_text
        mode = torch.where(to_speech, SPEECH, torch.where(to_text, TEXT, mode))
        seg_len = torch.where(to_speech, 0, seg_len)
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=device)], 1)
        out = model(step[:, None], _branches(mode, ~done, config.run_all_branches), mask, caches)
    return _collect(new_ids, kept, done, tokens, stop_ids, batch)


def _allowed(scores: Tensor, modality: int, tokens, seg_len: Tensor, config: GenerationConfig) -> Tensor:
    """Mask ids a channel may not produce: ``modality_pad`` in text; ids past ``eosp`` in
    speech, and ``eosp`` itself while the segment is shorter than ``min_new_tokens``."""
    if modality == TEXT:
        scores[:, tokens.modality_pad] = float("-inf")
        return scores
    scores[:, tokens.eosp + 1:] = float("-inf")
    scores[seg_len < config.min_new_tokens, tokens.eosp] = float("-inf")
    return scores


def _collect(new_ids: list[Tensor], kept: list[list[Tensor]], done: Tensor, tokens,
             stop_ids: tuple[int, ...], batch: int) -> list[Generated]:
    steps = torch.stack(new_ids, 1).cpu() if new_ids else torch.empty(batch, 0, 2, dtype=torch.long)
    results = []
    for row in range(batch):
        ids = steps[row][steps[row, :, 0] >= 0]
        modality = live_modality(ids, tokens)
        text_ids = [int(t) for t in ids[modality == TEXT, 0]
                    if int(t) != tokens.sosp and int(t) not in stop_ids]
        segments, current = [], []
        for code in ids[modality == SPEECH, 1].tolist():
            if code == tokens.eosp:
                segments.append(torch.tensor(current, dtype=torch.long))
                current = []
            else:
                current.append(code)
        if current:
            segments.append(torch.tensor(current, dtype=torch.long))
        results.append(Generated(ids, text_ids, segments, bool(done[row]), kept[row]))
    return results


__all__ = ["GenerationConfig", "Generated", "generate"]
