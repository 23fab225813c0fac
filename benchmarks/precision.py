"""Is bf16-mixed faster than fp32 on this CPU? A real training step says, next to ``auto``'s guess.

``precision: auto`` picks bf16-mixed on a CPU only where the bf16 flags are there *and* one
trunk-shaped matmul runs faster in bf16 (:func:`toolkit.machine.bf16_pays`). This times what
that stands for: optimizer steps of the split SmolLM2-135M model (stage II: every parameter of the
split trains) in fp32 and under bf16 autocast, alternating step by step so drifting load hits
both alike, and prints the matmul speeds ``auto`` measured and what it chose.

    python benchmarks/precision.py                       # 4 timed steps per precision, 8 x 128
    python benchmarks/precision.py --steps 6 --batch 16 --length 64
"""

from __future__ import annotations

import argparse
import contextlib

import torch

from train_step import _step, batches, build
from toolkit.machine import cpu_matmul_speeds, resolve_precision
from toolkit.speech_lm.module import set_trainable


def step_seconds(model, batches_, steps_per_side: int) -> dict[str, float]:
    """Mean seconds per stage-II optimizer step in ``fp32`` and ``bf16-mixed`` (the first
    batch of each warms up, untimed)."""
    trainable = [p for ps in set_trainable(model, ("text", "speech")).values() for p in ps]
    opt = torch.optim.AdamW(trainable, lr=1e-6)
    total = {"fp32": 0.0, "bf16-mixed": 0.0}
    for i, batch in enumerate(batches_[:steps_per_side + 1]):
        for name in total:
            bf16 = torch.autocast("cpu", dtype=torch.bfloat16) if name == "bf16-mixed" else contextlib.nullcontext()
            with bf16:
                took = _step(model, batch, opt, naive=False)
            if i > 0:
                total[name] += took
    return {name: seconds / steps_per_side for name, seconds in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per precision")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--codes", type=int, default=16384, help="speech vocabulary")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    fp32_gflops, bf16_gflops = cpu_matmul_speeds()
    chosen, why = resolve_precision("auto", "cpu")
    model, tok = build("smollm2", args.codes)
    model.train()
    seconds = step_seconds(model, batches(model, tok, "stage2", args.steps + 1, args.batch, args.length), args.steps)
    print("| precision | trunk matmul GFLOP/s | stage-II step s | vs fp32 |")
    print("|---|---:|---:|---:|")
    for name, gflops in (("fp32", fp32_gflops), ("bf16-mixed", bf16_gflops)):
        print(f"| {name} | {gflops:.0f} | {seconds[name]:.2f} | {seconds['fp32'] / seconds[name]:.2f}x |")
    print(f"\nauto chose {chosen}: {why}")
    print(f"(CPU, {torch.get_num_threads()} threads, batch {args.batch} x {args.length}, {args.steps} steps each)")


if __name__ == "__main__":
    main()
