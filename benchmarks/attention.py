"""Benchmark the fused two-branch attention kernel against PyTorch SDPA.

The split model folds its text and speech branches into the head axis and attends once:
``q[B, 2H, L, d]``, ``k/v[B, 2Hkv, L, d]``. Compared arrangements (causal, L = S):

- ``fused``: the Triton kernel, one launch (``toolkit.kernels.triton_attention``);
- ``sdpa x2``: two ``scaled_dot_product_attention`` calls, one per branch;
- ``sdpa cat``: one SDPA call over the concatenated heads;
- ``toolkit sdpa``: ``toolkit.kernels.attention(backend="sdpa")``, the fallback (on CUDA it
  repeats the KV heads, since SDPA's ``enable_gqa`` with a mask leaves the fast kernels).

"speedup" is the best SDPA arrangement's time divided by the row's time.

Forward and forward+backward time (median of CUDA-event timings after warmup) and TFLOP/s
(FlashAttention's convention: forward 4*B*H*L*S*d/2 for causal, backward 2.5x the forward).

    python benchmarks/attention.py                      # GPU: L = 1k..16k, bf16
    python benchmarks/attention.py --preset smollm2 --batch 4
    python benchmarks/attention.py --lengths 128 256    # on the CPU: the SDPA fallback only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

# per branch: (query heads, KV heads, head_dim)
PRESETS = {"qwen3": (32, 8, 128), "smollm2": (9, 3, 64)}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def sdpa_two_calls(q, k, v):
    """One SDPA call per branch (the first half of the heads is the text branch)."""
    halves = [F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, enable_gqa=True)
              for qb, kb, vb in zip(q.chunk(2, 1), k.chunk(2, 1), v.chunk(2, 1))]
    return torch.cat(halves, dim=1)


def sdpa_one_call(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


def toolkit_sdpa(q, k, v):
    """The toolkit's own fallback (KV heads repeated, then one SDPA call)."""
    from toolkit.kernels import attention

    return attention(q, k, v, backend="sdpa")


def fused(q, k, v):
    from toolkit.kernels.triton_attention import flash_attention

    return flash_attention(q, k, v)


def time_ms(fn: Callable[[], object], warmup: int, iters: int, cuda: bool) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(impl: Callable, q, k, v, warmup: int, iters: int) -> tuple[float, float]:
    """(forward ms, forward+backward ms)."""
    cuda = q.is_cuda
    grad = torch.randn_like(q)

    def forward():
        with torch.no_grad():
            impl(q, k, v)

    def forward_backward():
        q.grad = k.grad = v.grad = None
        impl(q, k, v).backward(grad)

    return time_ms(forward, warmup, iters, cuda), time_ms(forward_backward, warmup, iters, cuda)


def compare(q, k, v) -> str:
    """Largest differences of the fused kernel's output and gradients from SDPA's."""
    grad = torch.randn_like(q)
    found = []
    for impl in (fused, sdpa_one_call):
        q.grad = k.grad = v.grad = None
        out = impl(q, k, v)
        out.backward(grad)
        found.append([t.float() for t in (out, q.grad, k.grad, v.grad)])
    diffs = [(a - b).abs().max().item() for a, b in zip(*found)]
    named = zip(("out", "dq", "dk", "dv"), diffs)
    return "max |fused - sdpa|: " + ", ".join(f"{name} {diff:.2e}" for name, diff in named)


def causal_flops(batch: int, heads: int, length: int, head_dim: int) -> float:
    return 4.0 * batch * heads * length * length * head_dim / 2


def run(args: argparse.Namespace) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=140)
    cuda = torch.cuda.is_available() and not args.cpu
    device = "cuda" if cuda else "cpu"
    heads, kv_heads, head_dim = PRESETS[args.preset]
    dtype = DTYPES[args.dtype if cuda else args.cpu_dtype]
    lengths = args.lengths or ([1024, 2048, 4096, 8192, 16384] if cuda else [128, 256, 512])
    impls = {"sdpa x2": sdpa_two_calls, "sdpa cat": sdpa_one_call, "toolkit sdpa": toolkit_sdpa}
    if cuda:
        impls = {"fused": fused, **impls}
    where = torch.cuda.get_device_name() if cuda else "CPU"
    table = Table(title=f"causal attention, 2 branches x {heads}q/{kv_heads}kv heads, d={head_dim}, "
                        f"batch {args.batch}, {str(dtype).removeprefix('torch.')}, {where}")
    unit, per_ms = ("TFLOP/s", 1e9) if cuda else ("GFLOP/s", 1e6)
    for column in ("L", "impl", "fwd ms", f"fwd {unit}", "fwd+bwd ms", f"fwd+bwd {unit}",
                   "fwd speedup", "fwd+bwd speedup"):
        table.add_column(column, justify="right", no_wrap=True)
    for length in lengths:
        gen = torch.Generator(device=device).manual_seed(0)
        q, k, v = (torch.randn(args.batch, 2 * h, length, head_dim, device=device, dtype=dtype,
                               generator=gen).requires_grad_() for h in (heads, kv_heads, kv_heads))
        flops = causal_flops(args.batch, 2 * heads, length, head_dim)
        results = {name: measure(impl, q, k, v, args.warmup, args.iters) for name, impl in impls.items()}
        best_fwd = min(ms for name, (ms, _) in results.items() if name != "fused")
        best_all = min(ms for name, (_, ms) in results.items() if name != "fused")
        for name, (fwd_ms, all_ms) in results.items():
            table.add_row(str(length), name, f"{fwd_ms:.3f}", f"{flops / fwd_ms / per_ms:.1f}",
                          f"{all_ms:.3f}", f"{3.5 * flops / all_ms / per_ms:.1f}",
                          f"{best_fwd / fwd_ms:.2f}x", f"{best_all / all_ms:.2f}x")
        if cuda:
            console.print(f"L={length}: " + compare(q, k, v))
        table.add_section()
    console.print(table)
    if not cuda:
        console.print("No GPU: the fused Triton kernel's rows need CUDA; shown is the SDPA "
                      "fallback the toolkit uses on the CPU.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="qwen3")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="*")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="on the GPU")
    parser.add_argument("--cpu-dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU even with a GPU")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
