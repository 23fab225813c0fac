"""``python -m toolkit COMMAND``: one argparse program whose subcommands are plain modules.

Each module in :mod:`toolkit.cli.commands` defines ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int``; dropping a file there adds a command. A :class:`ToolkitError` is printed
as one line (``--debug`` shows the traceback) and the exit code is 2; a run stopped by SIGTERM or
Ctrl-C says so in one line and exits 143 / 130.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable

from toolkit.errors import ToolkitError
from toolkit.training.stopping import Stopped


def _commands() -> dict[str, object]:
    from toolkit.cli import commands

    mods = {}
    for info in pkgutil.iter_modules(commands.__path__):
        mods[info.name.replace("_", "-")] = importlib.import_module(f"{commands.__name__}.{info.name}")
    return mods


def build_parser(prog: str = "python -m toolkit") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="MOSS-style speech-to-speech toolkit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, mod in sorted(_commands().items()):
        cmd = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show tracebacks")
        mod.add_arguments(cmd)
        cmd.set_defaults(func=mod.main)
    return parser


def guarded(fn: Callable[[], int], debug: bool) -> int:
    """Run ``fn``; report user errors in one line instead of a traceback."""
    try:
        return fn()
    except ToolkitError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Stopped as stop:
        print(stop.message(), file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None, prog: str = "python -m toolkit") -> int:
    parser = build_parser(prog)
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (``run r.yaml --only x a=1``)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return guarded(lambda: args.func(args), args.debug)
