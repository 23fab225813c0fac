"""``doctor [RECIPE]``: what this machine is, what ``precision: auto`` picks here and why, and how
long the recipe's stages should take on it (from a measured profile, scaled by matmul speed)."""

from __future__ import annotations

import argparse

HELP = "print this machine's CPU features, matmul speed, auto precision and the main job's estimated time"
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", default="recipes/moss_full.yaml",
                        help="recipe whose time to estimate (default: recipes/moss_full.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")


def estimate_rows(recipe: dict, profile: dict, gflops: float) -> tuple[list[tuple[str, str, str]], float]:
    """``[(stage, steps, estimate)]`` from ``profile`` and the total seconds of the recipe's stages."""
    from toolkit.recipe import stage_steps
    from toolkit.timing import JobClock, format_duration

    names = list(recipe.get("stages") or [])
    steps = stage_steps(recipe, names)
    clock = JobClock(steps, profile, gflops)
    rows, total = [], 0.0
    for name in names:
        est = clock.scaled_reference(name)
        total += est or 0.0
        rows.append((name, str(steps[name] or "-"), format_duration(est) if est else "no profile"))
    return rows, total


def main(args: argparse.Namespace) -> int:
    import os

    import torch

    from toolkit.machine import cpu_flags, cpu_kind, cpu_name, matmul_gflops, resolve_trainer, \
        resolve_precision
    from toolkit.recipe import recipe_lineage
    from toolkit.runner import prepare
    from toolkit.timing import format_duration, reference_profile

    recipe = prepare(args.recipe, args.overrides)
    trainer = recipe.get("trainer") or {}
    flags, kind = cpu_flags(), cpu_kind()
    print(f"cpu        {cpu_name()}, {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads")
    print(f"features   " + "  ".join(f"{f}:{'yes' if f in flags else 'no'}" for f in FLAGS)
          + f"  (kind: {kind})")
    print(f"kernels    torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}, CUDA {torch.cuda.is_available()}")
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"matmul     fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s (bf16/fp32 {bf16 / fp32:.2f}x), "
          f"1024x1024")
    precision, why = resolve_precision("auto", trainer.get("accelerator"))
    print(f"auto       precision {precision}: {why}")
    used = resolve_trainer(trainer).get("precision", "32-true")
    if used != precision:
        print(f"recipe     sets precision {used}")
    gflops = bf16 if str(used).startswith("bf16") else fp32
    profile = reference_profile([recipe["name"], *recipe_lineage(args.recipe)], str(used), cpu_kind=kind)
    if profile is None:
        print(f"estimate   no measured profile for recipe '{recipe['name']}' in {used}")
        return 0
    rows, total = estimate_rows(recipe, profile, gflops)
    scaled = "scaled by matmul speed" if profile.get("gflops") else "not scaled"
    unknown = [name for name, _, est in rows if est == "no profile"]
    besides = f" + {', '.join(unknown)} (not in the profile)" if unknown else ""
    print(f"estimate   {recipe['name']} in {used}: ~{format_duration(total)}{besides} ({scaled}; "
          f"profile of {profile['recipe']} measured on: {profile.get('machine', '?')})")
    for name, steps, est in rows:
        print(f"  {name:<10} {steps:>6} steps  {est:>10}")
    return 0
