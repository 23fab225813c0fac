"""Malformed recipes: each gives one line that names the key path, and a non-zero exit."""

from pathlib import Path

import pytest

from toolkit.cli import main

GOOD = ("data: {plugin: toy_lines, params: {count: 3}}\n"
        "stages: [spine_write]\n")

CASES = {
    "unknown plugin": ("data: {plugin: toy_line, params: {count: 3}}\n",
                       "data.plugin", "did you mean toy_lines"),
    "unknown param": ("data: {plugin: toy_lines, params: {count: 3, prefx: a}}\n",
                      "data.params.prefx", "did you mean prefix"),
    "wrong type": ("data: {plugin: toy_lines, params: {count: three}}\n",
                   "data.params.count", "expected int"),
    "missing required": ("data: {plugin: toy_lines, params: {prefix: a}}\n",
                         "data.params.count", "missing required"),
    "bad literal": ("data: {plugin: toy_lines, params: {count: 1, mode: uper}}\n",
                    "data.params.mode", "did you mean upper"),
    "bad list item": ("data: {plugin: toy_lines, params: {count: 1, tags: [a, 3]}}\n",
                      "data.params.tags", "expected"),
    "bad interpolation": ("vars: {n: 2}\ndata: {plugin: toy_lines, params: {count: '${vars.m}'}}\n",
                          "data.params.count", "interpolation"),
    "unknown stage": (GOOD.replace("[spine_write]", "[spine_wrte]"),
                      "stages[0]", "did you mean spine_write"),
    "stage order": ("stages: [spine_count]\n", "stages[0]", "needs stage 'spine_write'"),
    "yaml syntax": ("data: {plugin: toy_lines\nstages: [a\n", "", "YAML syntax error"),
    "unknown top key": (GOOD + "trainr: {max_steps: 3}\n", "trainr", "did you mean trainer"),
    "unknown trainer arg": (GOOD + "trainer: {max_stepz: 3}\n", "trainer.max_stepz",
                            "did you mean max_steps"),
    "trainer value": (GOOD + "trainer: {precision: 17}\n", "trainer.precision",
                      "Precision 17 is invalid"),
    "trainer device": (GOOD + "trainer: {accelerator: tpu}\n", "trainer.accelerator", "value 'tpu'"),
    "trainer owned key": (GOOD + "trainer: {enable_checkpointing: true}\n",
                          "trainer.enable_checkpointing", "own safetensors checkpoints"),
    "node shape": ("data: toy_lines\n", "data", "expected {plugin"),
    "node key": ("data: {plugin: toy_lines, param: {count: 1}}\n", "data.param",
                 "did you mean params"),
    "stage arg": (GOOD + "stage_args: {spine_write: {repat: 2}}\n",
                  "stage_args.spine_write.repat", "did you mean repeat"),
    "stage args for unknown stage": (GOOD + "stage_args: {spine_wrte: {}}\n",
                                     "stage_args.spine_wrte", "did you mean spine_write"),
    "missing extends": ("extends: nowhere.yaml\n" + GOOD, "extends", "not found"),
    "stages not a list": ("stages: spine_write\n", "stages", "expected a list"),
    "seed type": (GOOD + "seed: abc\n", "seed", "expected int"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_recipe(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text, path, hint = CASES[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    assert main(["validate", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: recipe error")
    if path:
        assert f" at {path}:" in err
    assert hint in err


def test_missing_file_and_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "recipe file not found" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(GOOD)
    assert main(["validate", str(recipe), "seed"]) == 2
    assert "bad override 'seed'" in capsys.readouterr().err
    assert main(["validate", str(recipe), "data.params.count=x"]) == 2
    assert "at data.params.count: expected int" in capsys.readouterr().err


def test_extends_loop(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    assert main(["validate", str(tmp_path / "a.yaml")]) == 2
    assert "loop: a.yaml -> b.yaml -> a.yaml" in capsys.readouterr().err


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages: [nope]\n")
    from toolkit.errors import RecipeError

    with pytest.raises(RecipeError):
        main(["--debug", "validate", str(recipe)])


def test_invalid_trainer_value_fails_before_any_stage(tmp_path: Path, calls: list,
                                                      capsys: pytest.CaptureFixture) -> None:
    calls.clear()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(GOOD + f"out: {tmp_path / 'run'}\ntrainer: {{strategy: ddp_spawnn}}\n")
    assert main(["run", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at trainer.strategy:" in err, err
    assert calls == [] and not (tmp_path / "run").exists()


def test_trainer_max_steps_sets_every_training_stage() -> None:
    from toolkit.recipe import load_recipe, stage_params

    root = Path(__file__).resolve().parents[2]
    recipe = load_recipe(root / "recipes/moss_tiny.yaml", ["trainer.max_steps=7"])
    for name in ("pretrain", "tokenizer", "stage1", "stage2", "sft", "decoder"):
        assert stage_params(recipe, name).max_steps == 7, name
    plain = load_recipe(root / "recipes/moss_tiny.yaml")
    assert stage_params(plain, "stage1").max_steps == 60  # the recipe's own value otherwise
