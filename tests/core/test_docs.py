"""Each Python snippet of README.md and CONTRIBUTING.md runs on its own, in a fresh interpreter,
and prints what it promises; the plugin walk-through is the tested package.

Conventions in the docs:

- ``print(...)  # -> VALUE``: that line prints exactly ``VALUE`` (one line). Any other comment
  on a ``print`` line is refused, and ``# ->`` on any other line too, so no promise goes unchecked.
- ``<!-- snippet: not run (REASON) -->`` on the line just before a fence: that snippet is not run
  (for one that needs a trained run or large models); the reason is required.
"""

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/toolkit_example_plugin"
DOCS = ("README.md", "CONTRIBUTING.md")
NOT_RUN = re.compile(r"<!-- snippet: not run \((?P<why>[^)]+)\) -->")
PROMISE = re.compile(r"^(?P<indent>\s*)print\((?P<args>.*)\)\s*#\s*->\s*(?P<want>.*?)\s*$")
CHECKED = "__promises_checked__"
DRIVER = f"""
import io, sys

seen = []

def expect(line, want, *args, **kwargs):
    buf = io.StringIO()
    print(*args, **kwargs, file=buf)
    got = buf.getvalue().rstrip("\\n")
    print(got)
    seen.append(line)
    if got != want:
        raise AssertionError(f"{{sys.argv[2]}} line {{line}} printed {{got!r}}; the doc promises {{want!r}}")

source = open(sys.argv[1], encoding="utf-8").read()
exec(compile(source, sys.argv[2], "exec"), {{"__name__": "__main__", "__expect__": expect}})
print("{CHECKED}", *seen, file=sys.stderr)
"""


@dataclass
class Snippet:
    doc: str
    line: int
    """Line number in ``doc`` of the snippet's first code line."""
    code: str
    not_run: str | None = None


def blocks(doc: str, lang: str) -> list[Snippet]:
    """The ``lang`` fenced blocks of ``doc``, each with its line and not-run reason."""
    lines = (ROOT / doc).read_text().splitlines(keepends=True)
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):  # an opening fence; skip to its closing one
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if lines[i][3:].strip() == lang:
                marker = NOT_RUN.search(lines[i - 1]) if i else None
                out.append(Snippet(doc, i + 2, "".join(lines[i + 1:end]),
                                   marker.group("why") if marker else None))
            i = end
        i += 1
    return out


def promises(snippet: Snippet) -> tuple[str, list[int]]:
    """``snippet``'s code with each promising ``print`` turned into a check, padded so its line
    numbers are the doc's, and the doc lines of the promises. Refuses a comment on a print line
    that is not a promise, and a promise on a line that is not a print."""
    code, lines = [], []
    for n, text in enumerate(snippet.code.splitlines(), snippet.line):
        match = PROMISE.match(text)
        where = f"{snippet.doc}:{n}"
        if match:
            code.append(f"{match['indent']}__expect__({n}, {match['want']!r}, {match['args']})")
            lines.append(n)
            continue
        assert "# ->" not in text, f"{where}: a '# ->' promise must end a print(...) line"
        assert not re.match(r"\s*print\(.*\)\s*#", text), \
            f"{where}: a comment after print(...) must be a '# -> output' promise"
        code.append(text)
    return "\n" * (snippet.line - 1) + "\n".join(code) + "\n", lines



SNIPPETS = [s for doc in DOCS for s in blocks(doc, "python")]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"{s.doc}:{s.line}" for s in SNIPPETS])
def test_python_snippet_runs_and_prints_its_promises(snippet: Snippet, plugin_site: Path,
                                                     tmp_path: Path) -> None:
    code, promised = promises(snippet)
    if snippet.not_run:
        pytest.skip(f"marked not run in {snippet.doc}: {snippet.not_run}")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(plugin_site), os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", DRIVER, str(script), snippet.doc], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    checked = out.stderr.strip().splitlines()[-1].split()
    assert checked[0] == CHECKED and [int(n) for n in checked[1:]] == promised, \
        f"promises on lines {promised} were not all reached: {checked[1:]}"


def test_promise_convention_is_enforced() -> None:
    good = Snippet("doc.md", 10, "x = 1\nprint(x + 1)  # -> 2\n")
    code, lines = promises(good)
    assert lines == [11] and code.splitlines()[10] == "__expect__(11, '2', x + 1)"
    for bad in ("print(x)  # 2\n", "x = 1  # -> 1\n"):
        with pytest.raises(AssertionError, match="doc.md:10"):
            promises(Snippet("doc.md", 10, bad))


def test_contributing_shows_the_tested_plugin() -> None:
    shown = blocks("CONTRIBUTING.md", "python")[0].code
    assert shown.strip() == (FIXTURE / "toolkit_example_plugin/__init__.py").read_text().strip()
    toml = blocks("CONTRIBUTING.md", "toml")[0].code
    assert toml.strip() == (FIXTURE / "pyproject.toml").read_text().strip()
    tree = next(s.code for s in blocks("CONTRIBUTING.md", "") if "pyproject.toml" in s.code)
    assert tree.splitlines()[0] == f"{FIXTURE.name}/"  # step 1 names the fixture's folder


def test_readme_test_command_is_what_ci_runs() -> None:
    (test_cmd,) = [s.code.strip() for s in blocks("README.md", "bash") if "pytest" in s.code]
    assert test_cmd in (ROOT / ".ci/run").read_text()
