"""The ``lightning`` command: ``lightning run RECIPE.yaml`` runs a recipe; anything else is
handed on to Lightning's own command-line programs (``lightning run model`` -> ``fabric run``).

lightning 2.6 installs only a ``fabric`` command, so installing this toolkit takes nothing
away from anyone: every invocation that is not a recipe run reaches Lightning unchanged.
"""

from __future__ import annotations

import importlib.util
import sys

USAGE = """usage: lightning run RECIPE.yaml [key=value ...] [--only STAGE] [--debug]

Run a toolkit recipe: every stage in its `stages:` list, skipping complete ones.
  RECIPE.yaml     recipe file, e.g. recipes/moss_full.yaml
  key=value       overrides, e.g. trainer.max_steps=10 out=runs/mine
  --only STAGE    run only this stage (repeatable)
  --debug         show tracebacks

Other Lightning commands are handed on: `lightning run model SCRIPT ...` runs
Fabric's `fabric run SCRIPT ...`. See also `python -m toolkit --help`.
"""


def _is_recipe_run(argv: list[str]) -> bool:
    if len(argv) < 2 or argv[0] != "run":
        return False
    first = argv[1]
    return first.endswith((".yaml", ".yml")) or first in ("-h", "--help")


def _hand_to_fabric(argv: list[str]) -> int:
    from lightning.fabric.cli import _main as fabric_main

    sys.argv = ["fabric", *argv]
    try:
        fabric_main()
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0


def _hand_to_sdk(argv: list[str]) -> int:
    from lightning_sdk.cli.entrypoint import main_cli  # type: ignore[import-not-found]

    sys.argv = ["lightning", *argv]
    try:
        main_cli()
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if _is_recipe_run(argv):
        if argv[1] in ("-h", "--help"):
            print(USAGE, end="")
            return 0
        from toolkit.cli import main as toolkit_main

        return toolkit_main(["run", *argv[1:]], prog="lightning")
    if argv[:2] == ["run", "model"]:
        return _hand_to_fabric(["run", *argv[2:]])
    if importlib.util.find_spec("lightning_sdk") is not None:
        return _hand_to_sdk(argv)
    print(f"lightning: '{' '.join(argv)}' is not a recipe run (lightning run RECIPE.yaml), "
          "and no installed Lightning program handles it (installed: fabric; "
          "`lightning run model SCRIPT` goes to `fabric run`)", file=sys.stderr)
    return 2


def entry() -> None:
    sys.exit(main())
