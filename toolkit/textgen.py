"""Text generation with a trunk: left-padded batches, a KV cache, stop ids, streaming callback.

Works with any :class:`toolkit.contracts.Trunk` whose ``forward(input_ids, attention_mask,
cache)`` accepts a :class:`toolkit.nn.KVCache` from ``trunk.new_cache()`` (the ``llama``
trunk does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from toolkit.errors import ToolkitError
from toolkit.sampling import SamplingParams, sample

TokenCallback = Callable[[int, int], None]
"""``on_token(row, token_id)``: called for every generated token, in order."""


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int,
             device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Prompts -> ``ids[B,P]`` long, left-padded with ``pad_id``, and ``mask[B,P]`` bool."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ToolkitError("generate needs at least one prompt and no empty prompt")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.as_tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt):] = True
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def generate(trunk: torch.nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int = 64,
             sampling: SamplingParams | None = None, stop_ids: Sequence[int] = (),
             on_token: TokenCallback | None = None, generator: torch.Generator | None = None,
             use_cache: bool = True, pad_id: int = 0) -> list[list[int]]:
    """Continue each prompt; returns the new ids per row (ending with a stop id if one came).

    Args:
        prompts: token ids per row (lengths may differ: rows are left-padded).
        sampling: greedy when None or ``temperature == 0``.
        stop_ids: a row stops after producing any of these.
        on_token: streaming callback ``(row, id)``.
        generator: random source for sampling (seed it for reproducible output).
        use_cache: False recomputes the whole sequence each step (for testing the cache).
    """
    sampling = sampling or SamplingParams()
    device = next(trunk.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    batch, width = ids.shape
    total = width + max_new_tokens
    padded = not bool(mask.all())
    seq = torch.full((batch, total), pad_id, dtype=torch.long, device=device)
    seq[:, :width] = ids
    history = torch.full((batch, total), -1, dtype=torch.long, device=device)
    history[:, :width] = ids.masked_fill(~mask, -1)
    full_mask = torch.ones((batch, total), dtype=torch.bool, device=device)
    full_mask[:, :width] = mask
    stops = set(int(s) for s in stop_ids)
    out: list[list[int]] = [[] for _ in range(batch)]
    finished = [False] * batch
    cache = trunk.new_cache() if use_cache else None
    logits = trunk(ids, full_mask[:, :width] if padded else None, cache=cache, last_only=True)[:, -1]
    for step in range(max_new_tokens):
        end = width + step
        nxt = sample(logits, history[:, :end], sampling, generator)
        chosen = nxt.tolist()
        for row, token in enumerate(chosen):
            if finished[row]:
                chosen[row] = pad_id
                continue
            out[row].append(token)
            if on_token is not None:
                on_token(row, token)
            finished[row] = token in stops
        if all(finished) or step == max_new_tokens - 1:
            break
        nxt = torch.as_tensor(chosen, dtype=torch.long, device=device)
        seq[:, end] = nxt
        history[:, end] = nxt
        if cache is not None:
            step_mask = full_mask[:, :end + 1] if padded else None
            logits = trunk(nxt[:, None], step_mask, cache=cache, last_only=True)[:, -1]
        else:
            step_mask = full_mask[:, :end + 1] if padded else None
            logits = trunk(seq[:, :end + 1], step_mask, last_only=True)[:, -1]
    return out


__all__ = ["generate", "left_pad", "TokenCallback"]
