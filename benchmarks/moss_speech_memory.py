"""Memory that fine-tuning the released MOSS-Speech needs per mode, computed (not measured)
from the published tensor inventory (:data:`toolkit.formats.moss_build.REAL_SIZE`):

    python benchmarks/moss_speech_memory.py [--lora-rank 16] [--gpus 1]

Counted: weights, gradients and AdamW's two moments of what trains, in the dtype each is
held in. ``bf16-true`` (the recipe's precision) keeps everything in bf16; ``bf16-mixed``
keeps every weight in fp32 (autocast computes in bf16), with fp32 gradients and moments. FSDP divides all of it by the
number of GPUs. Not counted: activations (they grow with ``batch_tokens``), the CUDA context
and allocator slack.
"""

from __future__ import annotations

import argparse
import math

from toolkit.formats.moss_build import REAL_SIZE
from toolkit.formats.moss_layout import expected_shapes, parse_config
from toolkit.speech_lm.lora import TARGETS

GIB = 1024 ** 3


def counts(rank: int) -> dict[str, int]:
    """Parameter counts: all, speech side (audio embedding/block/norm/head), LoRA adapters
    of ``rank`` on every layer's attention and MLP linears, and on the audio block only."""
    shapes = expected_shapes(parse_config(REAL_SIZE, "REAL_SIZE"))
    numel = {n: math.prod(s) for n, s in shapes.items()}
    speech = sum(v for n, v in numel.items() if n.startswith(("model.audio_", "audio_lm_head")))
    lora = {n: rank * sum(s) for n, s in shapes.items()
            if any(n.endswith(f"{t}.weight") for t in TARGETS)}
    return {"all": sum(numel.values()), "speech": speech, "lora_all": sum(lora.values()),
            "lora_speech": sum(v for n, v in lora.items() if n.startswith("model.audio_block."))}


def table(rank: int, gpus: int) -> list[tuple[str, float, float]]:
    """``(mode, GiB in bf16-true, GiB in bf16-mixed)`` per GPU."""
    c = counts(rank)
    p = c["all"]
    modes = {"full": c["all"], "speech branch only": c["speech"],
             f"LoRA r={rank}, both sides": c["lora_all"], f"LoRA r={rank}, speech side": c["lora_speech"]}
    rows = []
    for mode, trained in modes.items():
        extra = trained if mode.startswith("LoRA") else 0  # adapters are new weights
        true = 2 * (p + extra) + (2 + 2 + 2) * trained
        mixed = 4 * (p + extra) + (4 + 4 + 4) * trained
        rows.append((mode, true / GIB / gpus, mixed / GIB / gpus))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--gpus", type=int, default=1)
    args = parser.parse_args()
    c = counts(args.lora_rank)
    print(f"parameters: {c['all'] / 1e9:.3f} B (speech side {c['speech'] / 1e9:.3f} B, "
          f"LoRA r={args.lora_rank}: {c['lora_all'] / 1e6:.1f} M all, {c['lora_speech'] / 1e6:.1f} M speech)")
    print(f"{'mode':32s} {'bf16-true GiB':>14s} {'bf16-mixed GiB':>15s}  (per GPU, {args.gpus} GPU(s), "
          f"activations excluded)")
    for mode, true, mixed in table(args.lora_rank, args.gpus):
        print(f"{mode:32s} {true:14.1f} {mixed:15.1f}")


if __name__ == "__main__":
    main()
