"""Tiny MOSS-Speech checkpoints in the published layout, and the contract's reference forward."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toolkit.formats.moss_build import build_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def moss_dir(tmp_path_factory) -> Path:
    """A tiny MOSS-Speech folder (2 shards, bf16, tokenizer): never modified by tests."""
    return build_checkpoint(tmp_path_factory.mktemp("moss") / "MOSS-Speech-tiny", seed=1)
