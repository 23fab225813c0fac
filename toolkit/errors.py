"""User-facing errors: one line that says what went wrong and where."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ToolkitError(Exception):
    """An error meant for the user: its message is printed as one line, without a traceback."""


class RecipeError(ToolkitError):
    """A problem in a recipe, located by its dotted key path (``trainer.max_steps``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.detail = message
        where = f" at {path}" if path else ""
        super().__init__(f"recipe error{where}: {message}")


class PluginError(ToolkitError):
    """A plugin that cannot be found, imported or built."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean X?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def listing(choices: Iterable[str]) -> str:
    """Comma-separated sorted names, or ``(none)``."""
    names = sorted(set(choices))
    return ", ".join(names) if names else "(none)"
