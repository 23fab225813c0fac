"""Every shipped recipe loads, and each plugin node's params are valid for its plugin, so a
mistyped key in a recipe nobody ran in CI (moss_full and its variants take an hour) fails here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from toolkit.errors import ToolkitError
from toolkit.params import parse_params
from toolkit.recipe import load_recipe
from toolkit.registry import load

ROOT = Path(__file__).resolve().parents[2]
KIND = {"data": "dataset", "trunk": "trunk", "splitter": "splitter", "tokenizer": "tokenizer",
        "decoder": "decoder"}
VARS = {"moss_speech_sft.yaml": ["vars.moss=/m", "vars.codec=/c", "vars.dialogues=/d.jsonl"]}
"""Mandatory ``vars`` of recipes that read the user's files (not opened here)."""


def plugin_errors(recipe: dict) -> list[str]:
    """One line per plugin node whose params its plugin rejects (runtime fields not checked)."""
    errors = []
    for key, kind in KIND.items():
        if key not in recipe:
            continue
        cls = load(kind, recipe[key]["plugin"])
        runtime = {f.name for f in dataclasses.fields(cls.Params) if f.metadata.get("toolkit_runtime")}
        params = {k: v for k, v in (recipe[key].get("params") or {}).items() if k not in runtime}
        try:
            parse_params(cls.Params, params, f"{key}.params")
        except ToolkitError as err:
            errors.append(str(err))
    return errors


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_recipe_and_plugin_params_are_valid(path: Path) -> None:
    assert plugin_errors(load_recipe(path, VARS.get(path.name, []))) == []


def test_a_mistyped_plugin_key_is_caught() -> None:
    recipe = load_recipe(ROOT / "recipes/moss_full_hearing.yaml", ["splitter.params.speech_reader_layer=3"])
    assert any("speech_reader_layer" in e for e in plugin_errors(recipe))
