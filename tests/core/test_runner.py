"""Running recipes: overrides, extension, the saved recipe, skipping and redoing stages."""

from pathlib import Path

import yaml

from toolkit.cli import main
from toolkit.run_folder import MARKER, is_complete
from toolkit.runner import run_recipe


def test_extension_overrides_and_saved_recipe(recipe_dir: Path, calls: list) -> None:
    run = run_recipe(recipe_dir / "child.yaml", ["data.params.prefix=item", "stage_args.spine_write.repeat=3"])
    assert run == recipe_dir / "run"
    lines = (run / "spine_write" / "lines.txt").read_text().splitlines()
    assert lines == [f"item {i}" for i in range(6)]  # n from the child, prefix from the override
    saved = yaml.safe_load((run / "recipe.yaml").read_text())
    assert saved["data"]["params"] == {"count": 6, "prefix": "item"}  # resolved, not ${vars.n}
    assert saved["seed"] == 3 and saved["name"] == "child"
    assert saved["stage_args"]["spine_write"]["repeat"] == 3
    assert (run / "spine_count" / "count.txt").read_text() == "6"
    # the saved recipe reproduces the run from its own folder
    again = run_recipe(run / "recipe.yaml", [f"out={recipe_dir / 'rerun'}"])
    assert (again / "spine_write" / "lines.txt").read_text() == "\n".join(lines) + "\n"


def test_default_run_folder(recipe_dir: Path, calls: list, monkeypatch) -> None:
    monkeypatch.chdir(recipe_dir)
    assert run_recipe("base.yaml") == Path("runs/base")
    assert is_complete(recipe_dir / "runs/base/spine_count")


def test_complete_stage_is_skipped_incomplete_redone(recipe_dir: Path, calls: list) -> None:
    run = run_recipe(recipe_dir / "child.yaml")
    assert calls == ["spine_write", "spine_count"]
    run_recipe(recipe_dir / "child.yaml")
    assert calls == ["spine_write", "spine_count"]  # both skipped
    (run / "spine_write" / "extra.bin").write_bytes(b"12")  # truncated output
    assert not is_complete(run / "spine_write")
    run_recipe(recipe_dir / "child.yaml")
    assert calls[2:] == ["spine_write", "spine_count"]  # what follows a redone stage is stale
    (run / "spine_count" / MARKER).unlink()  # interrupted before publishing
    run_recipe(recipe_dir / "child.yaml")
    assert calls[4:] == ["spine_count"]
    assert is_complete(run / "spine_write") and is_complete(run / "spine_count")


def test_failed_stage_is_not_published(recipe_dir: Path, calls: list, capsys) -> None:
    code = main(["run", str(recipe_dir / "child.yaml"), "data.params.count=-1"])
    # a negative count writes an empty file: still a valid run; now break the stage itself
    assert code == 0
    bad = recipe_dir / "bad.yaml"
    bad.write_text("extends: child.yaml\nstage_args: {spine_write: {repeat: -1}}\n")
    try:
        run_recipe(bad, [f"out={recipe_dir / 'bad_run'}"])
    except RuntimeError:
        pass
    assert not (recipe_dir / "bad_run" / "spine_write").exists()
    assert (recipe_dir / "bad_run" / "spine_write.partial").is_dir()


def test_show_prints_resolved(recipe_dir: Path, capsys) -> None:
    assert main(["show", str(recipe_dir / "child.yaml"), "seed=9"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["seed"] == 9 and shown["data"]["params"]["count"] == 6


def test_overrides_may_follow_options(recipe_dir: Path, calls: list) -> None:
    assert main(["run", str(recipe_dir / "child.yaml"), "--only", "spine_write", "vars.n=2"]) == 0
    assert calls == ["spine_write"]
    assert (recipe_dir / "run" / "spine_write" / "lines.txt").read_text().count("\n") == 2
