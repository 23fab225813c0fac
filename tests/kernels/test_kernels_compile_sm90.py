"""Compile the attention kernels ahead of time for an H100 (sm_90), with no GPU needed.

The interpreter runs the kernels as Python, so it cannot catch what only the compiler sees
(types, specialised arguments, shared memory). Triton ships LLVM and ptxas, so this compiles
for real: the kernels must lower to Hopper tensor-core instructions (wgmma), pipeline their
loads (async copies), and fit an H100's shared memory in every autotune configuration."""

from __future__ import annotations

import importlib

import pytest

H100_SHARED_BYTES = 227 * 1024


@pytest.fixture(scope="module")
def kernels():
    module = importlib.import_module("toolkit.kernels.triton_attention")
    if module.INTERPRETED:
        pytest.skip("this process runs Triton's interpreter")
    return importlib.import_module("toolkit.kernels.flash_kernels")


def compile_for_h100(fn, dtype: str, head_dim: int, block_m: int, block_n: int, warps: int,
                     stages: int, has_pad: bool = True, specialise: dict | None = None):
    """``triton.compile`` as the JIT would for contiguous tensors (pointers and strides
    divisible by 16, lengths unknown), with ints equal to 1 passed as ``specialise``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constexprs = dict(HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, HAS_PAD=has_pad,
                      UPCAST=False, PRECISION="ieee" if dtype == "fp32" else "tf32")
    constexprs.update(specialise or {})
    constexprs = {name: value for name, value in constexprs.items() if name in fn.arg_names}
    signature, attrs = {}, {}
    for index, name in enumerate(fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in ("LSE", "DELTA"):
            signature[name] = "*fp32"
        elif name == "KP":
            signature[name] = "*u8"
        elif name in ("Q", "K", "V", "O", "DO", "DQ", "DK", "DV"):
            signature[name] = f"*{dtype}"
        else:
            signature[name] = "fp32" if name.startswith("scale") else "i32"
        if signature[name].startswith("*") or (name.startswith("s") and signature[name] == "i32"
                                               and name != "skpb"):
            attrs[(index,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    try:
        return triton.compile(source, target=GPUTarget("cuda", 90, 32),
                              options=dict(num_warps=warps, num_stages=stages))
    except FileNotFoundError as err:  # a triton build without its bundled ptxas
        pytest.skip(f"cannot compile for CUDA here: {err}")


@pytest.mark.parametrize("name, dtype, head_dim, blocks", [
    ("fwd_kernel", "bf16", 128, (128, 64, 8, 3)),
    ("dkdv_kernel", "bf16", 128, (64, 128, 8, 2)),
    ("dq_kernel", "fp16", 64, (128, 64, 8, 2)),
])
def test_kernels_use_hopper_tensor_cores_with_pipelined_loads(kernels, name, dtype, head_dim, blocks):
    compiled = compile_for_h100(getattr(kernels, name), dtype, head_dim, *blocks)
    assert "wgmma" in compiled.asm["ptx"]
    assert "async_copy_global_to_local" in compiled.asm["ttgir"]
    assert compiled.metadata.shared <= H100_SHARED_BYTES


def test_fp32_decode_step_and_delta_kernel_compile(kernels):
    """fp32 (exact ieee dots), one query and one query head per KV head: the JIT turns the
    ints equal to 1 into constants, which changes the code it compiles."""
    compiled = compile_for_h100(kernels.fwd_kernel, "fp32", 64, 64, 64, 4, 3, has_pad=False,
                                specialise=dict(L=1, GROUP=1))
    assert compiled.metadata.shared <= H100_SHARED_BYTES
    delta = compile_for_h100(kernels.delta_kernel, "bf16", 128, 64, 64, 4, 1)
    assert delta.metadata.shared <= H100_SHARED_BYTES


@pytest.mark.slow
def test_every_bf16_autotune_config_fits_an_h100(kernels):
    """(fp32 tiles of the larger configs do not fit; the autotuner drops those at run time.)"""
    from toolkit.kernels.triton_attention import _CONFIGS

    for name, configs in _CONFIGS.items():
        for block_m, block_n, warps, stages in configs:
            compiled = compile_for_h100(getattr(kernels, f"{name}_kernel"), "bf16", 128,
                                        block_m, block_n, warps, stages)
            assert compiled.metadata.shared <= H100_SHARED_BYTES, (name, block_m, block_n)
            assert "wgmma" in compiled.asm["ptx"], (name, block_m, block_n)
