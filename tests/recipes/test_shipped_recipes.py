"""Every shipped recipe passes the runner's own check (``validate_recipe``: keys, plugin params,
stages, stage options), so a mistyped key in a recipe nobody runs in CI (moss_full and its
variants take an hour) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import RecipeError
from toolkit.recipe import load_recipe, validate_recipe

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = {"moss_speech_sft.yaml": ["vars.moss=/m", "vars.codec=/c", "vars.dialogues=/d.jsonl",
                                      "trainer.accelerator=cpu", "trainer.strategy=auto"]}
"""What a recipe needs to be checked here: its mandatory ``vars`` (the user's files, not opened)
and a CPU where it asks for a GPU."""


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_recipe_is_valid(path: Path) -> None:
    validate_recipe(load_recipe(path, OVERRIDES.get(path.name, [])))


def test_a_mistyped_plugin_key_is_caught() -> None:
    recipe = load_recipe(ROOT / "recipes/moss_full_hearing.yaml", ["splitter.params.speech_reader_layer=3"])
    with pytest.raises(RecipeError, match="speech_reader_layer"):
        validate_recipe(recipe)
