"""JSONL manifests: one JSON object a line, written atomically with stable bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.io import write_text


def read_manifest(path: str | Path, errors: list[dict[str, Any]] | None = None) -> list[dict]:
    """Rows of a JSONL file; blank lines are ignored.

    A line that is not a JSON object raises :class:`ToolkitError` naming ``file:line``, unless
    ``errors`` is a list: then the line is skipped and ``{"line", "path", "reason", ...}`` is
    appended to it.
    """
    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: manifest not found")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except (json.JSONDecodeError, ValueError) as err:
                msg = getattr(err, "msg", str(err))
                if errors is None:
                    raise ToolkitError(f"{path}:{lineno}: bad manifest line ({msg})") from None
                errors.append({"path": f"{path}:{lineno}", "line": lineno, "reason": "bad_json",
                               "detail": f"bad manifest line ({msg})"})
                continue
            rows.append(row)
    return rows


def dumps_rows(rows: Iterable[dict[str, Any]]) -> str:
    """The JSONL text of ``rows`` (keys sorted, so equal rows give equal bytes)."""
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)


def write_manifest(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSONL atomically (readers see the old file or the complete new one)."""
    return write_text(path, dumps_rows(rows))


__all__ = ["read_manifest", "write_manifest", "dumps_rows"]
