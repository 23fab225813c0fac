"""Every Python snippet in README.md and CONTRIBUTING.md runs; the walk-through is the tested package."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/toolkit_example_plugin"


def blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "CONTRIBUTING.md"])
def test_python_snippets_run(doc: str, capsys: pytest.CaptureFixture) -> None:
    namespace: dict = {}
    for code in blocks(doc, "python"):
        exec(compile(code, doc, "exec"), namespace)  # noqa: S102 - our own docs


def test_contributing_shows_the_tested_plugin() -> None:
    shown = blocks("CONTRIBUTING.md", "python")[0]
    assert shown.strip() == (FIXTURE / "toolkit_example_plugin/__init__.py").read_text().strip()
    assert blocks("CONTRIBUTING.md", "toml")[0].strip() == (FIXTURE / "pyproject.toml").read_text().strip()


def test_readme_test_command_is_what_ci_runs() -> None:
    test_cmd = blocks("README.md", "bash")[1].strip()
    assert test_cmd in (ROOT / ".ci/run").read_text()
