"""The installed command lines: `lightning run`, the hand-off to Lightning, a third-party plugin."""

import os
import subprocess
import sys
from pathlib import Path




def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_lightning_run_help_and_recipe_error(tmp_path: Path) -> None:
    out = run("lightning", "run", "--help")
    assert out.returncode == 0 and "lightning run RECIPE.yaml" in out.stdout
    bad = tmp_path / "r.yaml"
    bad.write_text("tokenizer: {plugin: whispr_vqq}\n")
    out = run("lightning", "run", str(bad))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: recipe error at tokenizer.plugin: unknown tokenizer")


def test_lightning_run_model_goes_to_fabric(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    marker = tmp_path / "ran.txt"
    script.write_text("import os, sys\n"
                      f"open({str(marker)!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    out = run("lightning", "run", "model", "--accelerator=cpu", str(script), "--lr", "3")
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "--lr 3"


def test_unknown_lightning_command_is_reported() -> None:
    out = run("lightning", "deploy", "thing")
    assert out.returncode == 2 and "not a recipe run" in out.stderr



def test_third_party_plugin_from_recipe(plugin_site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    listing = run(sys.executable, "-m", "toolkit", "plugins", "--kind", "tokenizer", env=env)
    assert "energy" in listing.stdout and "toolkit-example-plugin" in listing.stdout
    recipe = tmp_path / "r.yaml"
    recipe.write_text("tokenizer: {plugin: energy, params: {levels: 8}}\n")
    assert run(sys.executable, "-m", "toolkit", "validate", str(recipe), env=env).returncode == 0
    bad = run(sys.executable, "-m", "toolkit", "validate", str(recipe),
              "tokenizer.params.levels=many", env=env)
    assert bad.returncode == 2 and "tokenizer.params.levels: expected int" in bad.stderr
    code = ("import torch\nfrom toolkit.recipe import load_recipe\n"
            "from toolkit.registry import build_node\n"
            f"r = load_recipe({str(recipe)!r})\n"
            "tok = build_node('tokenizer', r['tokenizer'], 'tokenizer')\n"
            "wav = torch.cat([torch.zeros(1280), torch.ones(1280)])[None]\n"
            "print(tok.encode(wav)[0].tolist())\n")
    out = run(sys.executable, "-c", code, env=env)
    assert out.stdout.strip() == "[[0, 7]]", out.stderr
