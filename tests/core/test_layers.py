"""The package's layers only point down, and no module imports itself back in a circle.

Read from the source: every ``import`` statement, including those inside functions (a lazy
import is still a dependency), except those under ``if TYPE_CHECKING:``, which only name types
in annotations and are never run. The layers, bottom up, are the table in
``docs/architecture.md``: a module may import its own layer or any lower one, never a higher.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("contracts", ("toolkit.contracts", "toolkit.errors")),
    ("helpers", ("toolkit.io", "toolkit.params", "toolkit.machine", "toolkit.timing",
                 "toolkit.sampling", "toolkit.textgen", "toolkit.audio_features",
                 "toolkit.streaming", "toolkit.run_folder")),
    ("building blocks", ("toolkit.nn", "toolkit.kernels", "toolkit.data", "toolkit.training",
                         "toolkit.registry")),
    ("model", ("toolkit.speech_lm",)),
    ("loading and plugins", ("toolkit.persist", "toolkit.formats", "toolkit.loading", "plugins")),
    ("evaluation", ("toolkit.evaluation",)),
    ("stages", ("toolkit.stages",)),
    ("recipe and runner", ("toolkit.recipe", "toolkit.runner")),
    ("command line and public API", ("toolkit.cli", "toolkit.__main__", "toolkit")),
]


def module_files() -> dict[str, Path]:
    mods = {}
    for package in ("toolkit", "plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


def imported(module: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The toolkit / plugins modules ``module`` imports (a package's names resolve to their
    module when one exists, else to the package)."""
    out = set()
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for target in targets:
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in mods and target != module:
                out.add(target)
    return out


def layer_of(module: str) -> int:
    """The index of the most specific prefix in :data:`LAYERS` that ``module`` falls under."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return best


def graph() -> dict[str, set[str]]:
    mods = module_files()
    return {m: imported(m, p, mods) for m, p in mods.items()}


def test_every_import_points_to_the_same_or_a_lower_layer() -> None:
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in graph().items() for t in sorted(targets) if layer_of(t) > layer_of(m)]
    assert not upward, "imports from a lower layer up to a higher one:\n" + "\n".join(upward)


def test_toolkit_never_imports_plugins() -> None:
    bad = [f"{m} imports {t}" for m, targets in graph().items() if m.startswith("toolkit")
           for t in targets if t.startswith("plugins")]
    assert not bad, "\n".join(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return out


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_the_checks_find_a_circle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer_of("toolkit.stages.shared") > layer_of("toolkit.evaluation.run")
    assert layer_of("toolkit") > layer_of("toolkit.runner")  # the facade, not a prefix of all


def only_reexports(path: Path) -> bool:
    """True for a package ``__init__.py`` that holds only a docstring, imports and ``__all__``."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, (ast.Import, ast.ImportFrom)) or
               (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or
               (isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"])
               for node in body)


def test_the_architecture_table_names_every_file_and_layer() -> None:
    """``docs/architecture.md`` has a row naming each file's folder and the file (by its path
    inside that folder; a package ``__init__.py`` that only re-exports needs none), and its layer table names every layer of :data:`LAYERS` in order."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in doc.splitlines() if line.startswith("| `")]
    missing = []
    for module, path in module_files().items():
        rel = path.relative_to(ROOT)
        if path.name == "__init__.py" and only_reexports(path):
            continue
        named = any(rel.as_posix().startswith(row[0].strip("`")) and
                    f"`{rel.as_posix()[len(row[0].strip('`')):]}`" in row[1] for row in rows)
        if not named:
            missing.append(rel.as_posix())
    assert not missing, "files docs/architecture.md does not place in a room: " + ", ".join(missing)
    layer_rows = [line for line in doc.splitlines() if line.startswith("| ") and ". " in line[:6]]
    assert [row.split("|")[1].strip().split(". ", 1)[1] for row in layer_rows] == [n for n, _ in LAYERS]
