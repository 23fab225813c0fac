"""LoRA fine-tuning of a split model with ``peft`` (extra ``lora``): adapters on the linear
layers of the chosen sides, merged back into the weights before the stage saves, so the saved
model (and an export) has exactly the original tensor names and shapes.

For a linear ``W[out, in]`` the adapter adds ``(alpha / r) * B[out, r] @ A[r, in]``; ``B``
starts at zero, so the model is unchanged at step 0.
"""

from __future__ import annotations

import types

from torch import nn

from toolkit.errors import ToolkitError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SIDE_LAYERS = {"text": (r"shared\.\d+", r"branches\.text\.layers\.\d+"),
               "speech": (r"branches\.speech\.layers\.\d+",)}


def target_regex(sides: tuple[str, ...], targets: tuple[str, ...] = TARGETS) -> str:
    """The full-match module-name regex of the linears to adapt on ``sides``."""
    unknown = set(sides) - set(SIDE_LAYERS)
    if unknown or not sides:
        raise ToolkitError(f"LoRA sides must be among text, speech (got {list(sides)})")
    layers = [p for s in sides for p in SIDE_LAYERS[s]]
    return rf"^({'|'.join(layers)})\..*\b({'|'.join(targets)})$"


def _lora_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {"text": [], "speech": []}
    for name, p in model.named_parameters():
        if "lora_" in name:
            groups["speech" if name.startswith("branches.speech.") else "text"].append((name, p))
    return groups


def add_lora(model: nn.Module, sides: tuple[str, ...], rank: int, alpha: float = 16.0,
             dropout: float = 0.0, targets: tuple[str, ...] = TARGETS) -> int:
    """Inject LoRA adapters into ``model`` in place; only they train afterwards (the model's
    ``parameter_groups`` then lists just the adapters, by side). Returns their parameter count."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ToolkitError("LoRA needs the peft package: pip install 'moss-speech-toolkit[lora]'") from None
    if rank < 1:
        raise ToolkitError(f"lora_rank must be at least 1 (got {rank})")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=target_regex(tuple(sides), tuple(targets)))
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    model.parameter_groups = types.MethodType(_lora_groups, model)
    count = sum(p.numel() for _, ps in _lora_groups(model).items() for _, p in ps)
    if count == 0:
        raise ToolkitError(f"LoRA matched no layer for sides {list(sides)} and targets {list(targets)}")
    return count


def merge_lora(model: nn.Module) -> int:
    """Fold every adapter into its base weight and put the base layers back; returns how many
    layers were merged. The model's own ``parameter_groups`` is restored."""
    from peft.tuners.lora import LoraLayer

    from toolkit.nn import drop_fast_copies

    merged = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoraLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
                merged += 1
    model.__dict__.pop("parameter_groups", None)
    for p in model.parameters():
        p.requires_grad_(True)
    drop_fast_copies(model)
    return merged


__all__ = ["add_lora", "merge_lora", "target_regex", "TARGETS"]
