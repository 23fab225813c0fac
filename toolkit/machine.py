"""Per-machine choices, made once and explained: which precision ``precision: auto`` means here.

bf16 pays off only where the hardware computes it natively: on CPUs with ``avx512_bf16`` or
``amx_bf16`` a bf16 matmul usually runs 2-5x faster than fp32, on CPUs without them PyTorch
emulates it and it runs about 3x *slower* (measured 16 against 48 GFLOP/s on a 2-core Xeon without
avx512_bf16). The flag alone is not enough: on a 2-core Xeon with ``avx512_bf16`` and no AMX, bf16
matmuls ran at 0.5-0.6x of fp32 (211-216 against 340-410 GFLOP/s). So on a CPU with the flags
``auto`` times one matmul of the trunk's shape in both types (about a second, once per process)
and is ``bf16-mixed`` only where bf16 is the faster; it is ``bf16-mixed`` on GPUs that support
bf16, and ``32-true`` (with denormals flushed, which :func:`toolkit.training.fit` always does)
elsewhere.

``ONEDNN_MAX_CPU_ISA`` caps the instructions oneDNN (PyTorch's CPU matmul library) may use; a
cap below the bf16 ones (e.g. ``AVX512_CORE``) makes a bf16 CPU behave like one without, and
:func:`native_bf16` follows it. ``python -m toolkit doctor`` prints all of this with measured
matmul throughput.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

AUTO = "auto"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags (``/proc/cpuinfo``) that give native bf16 dot products."""
BF16_ISA_WORDS = ("BF16", "FP16", "AMX", "AVX10", "DEFAULT", "ALL")
"""oneDNN ISA names that include the bf16 instructions (``AVX512_CORE_BF16`` and above)."""


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (empty where ``/proc/cpuinfo`` is unavailable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def _uses_gpu(accelerator: Any) -> bool:
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator in (None, AUTO) and torch.cuda.is_available()


def native_bf16(accelerator: Any = "cpu") -> tuple[bool, str]:
    """``(native, reason)``: whether the device a Trainer with ``accelerator`` uses computes
    bf16 natively, and why, in a few words."""
    if _uses_gpu(accelerator):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, f"GPU {torch.cuda.get_device_name(0)} supports bf16"
        return False, "the GPU does not support bf16"
    have = [f for f in BF16_FLAGS if f in cpu_flags()]
    if not have:
        return False, "the CPU has neither amx_bf16 nor avx512_bf16, so bf16 is emulated (slower than fp32)"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and not any(word in cap for word in BF16_ISA_WORDS):
        return False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN off the CPU's bf16 instructions"
    return True, f"the CPU has {' and '.join(have)}"


def cpu_kind() -> str:
    """The kind of CPU as far as training speed goes: ``amx`` (bf16 matrix tiles),
    ``avx512_bf16`` (bf16 dot products, no tiles: bf16 matmuls ~4x slower than on AMX) or
    ``no-native-bf16`` (also where ``ONEDNN_MAX_CPU_ISA`` keeps oneDNN off bf16)."""
    if not native_bf16("cpu")[0]:
        return "no-native-bf16"
    return "amx" if "amx_bf16" in cpu_flags() else "avx512_bf16"


TRUNK_MATMUL = (2048, 576, 1536)
"""``(rows, inner, cols)`` of the matmul :func:`bf16_pays` times: 2048 tokens through the first
MLP projection of a SmolLM2-135M-sized trunk (hidden 576, MLP 1536)."""


@lru_cache(maxsize=1)
def cpu_matmul_speeds() -> tuple[float, float]:
    """``(fp32, bf16)`` GFLOP/s of this CPU on the :data:`TRUNK_MATMUL` shape (measured once)."""
    return matmul_gflops(torch.float32, TRUNK_MATMUL), matmul_gflops(torch.bfloat16, TRUNK_MATMUL)


def bf16_pays(accelerator: Any = "cpu") -> tuple[bool, str]:
    """``(faster, reason)``: whether bf16 is native on the device a Trainer with ``accelerator``
    uses *and*, on a CPU, measured faster than fp32 (:func:`cpu_matmul_speeds`)."""
    native, why = native_bf16(accelerator)
    if not native or _uses_gpu(accelerator):
        return native, why
    fp32, bf16 = cpu_matmul_speeds()
    speeds = f"bf16 matmuls at {bf16 / fp32:.2f}x of fp32 ({bf16:.0f} against {fp32:.0f} GFLOP/s)"
    if bf16 < fp32:
        return False, f"{why}, but measured {speeds}"
    return True, f"{why}, {speeds}"


def resolve_precision(precision: Any, accelerator: Any = "cpu") -> tuple[Any, str]:
    """``(precision, reason)``: ``"auto"`` becomes ``"bf16-mixed"`` where bf16 is native and
    faster than fp32 (:func:`bf16_pays`) and ``"32-true"`` elsewhere; any other value is
    returned as given."""
    if precision != AUTO:
        return precision, "set in the recipe"
    faster, why = bf16_pays(accelerator)
    return ("bf16-mixed" if faster else "32-true"), why


def resolve_trainer(trainer: dict[str, Any] | None) -> dict[str, Any]:
    """The recipe's ``trainer`` mapping with every per-machine choice (``precision: auto``)
    made; the input is not changed."""
    kwargs = dict(trainer or {})
    if "precision" in kwargs:
        kwargs["precision"], _ = resolve_precision(kwargs["precision"], kwargs.get("accelerator"))
    return kwargs


def describe_choices(trainer: dict[str, Any] | None) -> str:
    """One line saying what this machine is and what the per-machine choices are, and why."""
    kwargs = dict(trainer or {})
    device = "GPU" if _uses_gpu(kwargs.get("accelerator")) else f"CPU {cpu_name()}"
    threads = torch.get_num_threads()
    line = f"machine: {device}, {threads} threads"
    if "precision" in kwargs:
        value, why = resolve_precision(kwargs["precision"], kwargs.get("accelerator"))
        given = kwargs["precision"]
        line += f"; precision {value}" + (f" (auto: {why})" if given == AUTO else "")
    return line


def matmul_gflops(dtype: torch.dtype, size: int | tuple[int, int, int] = 1024, seconds: float = 0.5) -> float:
    """Throughput of a ``[m, k] @ [k, n]`` matmul in ``dtype`` on the CPU (``size`` is ``(m, k,
    n)``, or one number for a square product), with the current thread count (GFLOP/s): the
    fastest of the products timed over ``seconds``, since on a shared machine other work only
    ever slows a product down (the mean varied 77-156 GFLOP/s between calls on one 2-core VM)."""
    m, k, n = (size, size, size) if isinstance(size, int) else size
    a = torch.randn(m, k).to(dtype)
    b = torch.randn(k, n).to(dtype)
    a @ b
    fastest, count, start = float("inf"), 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        a @ b
        fastest = min(fastest, time.perf_counter() - begin)
        count += 1
    return 2 * m * k * n / fastest / 1e9
