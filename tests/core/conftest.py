"""In-process plugins and stages for the core tests (real registry, registered by hand)."""

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch

import toolkit
from toolkit.contracts import SpeechDataset
from toolkit.io import write_text
from toolkit.stages import stage


class ToyDataset(SpeechDataset):
    """Writes ``count`` lines of text: enough to see stages run, skip and redo."""

    api_version = toolkit.API_VERSION

    @dataclass
    class Params:
        count: int
        prefix: str = "line"
        scale: float = 1.0
        mode: Literal["plain", "upper"] = "plain"
        tags: list[str] | None = None

    def __init__(self, params: Params) -> None:
        self.params = params

    def prepare(self, root: Path) -> dict[str, Path]:
        lines = [f"{self.params.prefix} {i}" for i in range(self.params.count)]
        if self.params.mode == "upper":
            lines = [s.upper() for s in lines]
        return {"lines": write_text(root / "lines.txt", "\n".join(lines) + "\n")}


@dataclass
class ToyStageParams:
    repeat: int = 1


CALLS: list[str] = []


@stage("spine_write", params=ToyStageParams)
def spine_write(ctx):
    """Prepare the toy dataset into the stage folder."""
    CALLS.append("spine_write")
    ds = ctx.build("data")
    ds.prepare(ctx.work_dir)
    (ctx.work_dir / "extra.bin").write_bytes(torch.randn(ctx.params.repeat).numpy().tobytes())


@stage("spine_count", needs=("spine_write",))
def spine_count(ctx):
    """Count the lines the first stage wrote."""
    CALLS.append("spine_count")
    n = len((ctx.output("spine_write") / "lines.txt").read_text().splitlines())
    write_text(ctx.work_dir / "count.txt", str(n))


toolkit.register("dataset", "toy_lines", ToyDataset)


@pytest.fixture
def calls():
    CALLS.clear()
    return CALLS


@pytest.fixture
def recipe_dir(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(
        "seed: 3\n"
        "vars: {n: 4}\n"
        "data: {plugin: toy_lines, params: {count: '${vars.n}', prefix: row}}\n"
        "stages: [spine_write, spine_count]\n"
        "trainer: {accelerator: cpu, max_steps: 5}\n")
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\n"
        "vars: {n: 6}\n"
        f"out: {tmp_path / 'run'}\n")
    return tmp_path


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toolkit_example_plugin"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin package pip-installed, as a user would, into a private folder
    (put it on ``sys.path`` / ``PYTHONPATH`` to use it by its entry-point name)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / FIXTURE.name
    shutil.copytree(FIXTURE, source)  # setuptools builds in the source folder
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-cache-dir", "--quiet", "--target", str(target), str(source)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return target
