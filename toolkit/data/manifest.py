"""JSONL manifests: one JSON object a line, written atomically with stable bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.io import read_json, write_text


def corpus_manifest(corpus_dir: Path) -> Path:
    """The utterance manifest of a ``corpus`` stage folder."""
    listing = corpus_dir / "manifests.json"
    if listing.is_file():
        names = read_json(listing)
        rel = names.get("utterances") or next(iter(names.values()), None)
        if rel:
            path = Path(rel)
            return path if path.is_absolute() else corpus_dir / path
    path = corpus_dir / "utterances.jsonl"
    if not path.is_file():
        raise ToolkitError(f"{corpus_dir}: no utterances.jsonl (is it a corpus stage folder?)")
    return path


def dumps_rows(rows: Iterable[dict[str, Any]]) -> str:
    """The JSONL text of ``rows`` (keys sorted, so equal rows give equal bytes)."""
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)


def write_manifest(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSONL atomically (readers see the old file or the complete new one)."""
    return write_text(path, dumps_rows(rows))


__all__ = ["write_manifest", "dumps_rows", "corpus_manifest"]
