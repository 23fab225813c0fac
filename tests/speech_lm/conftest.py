"""Makes speech_lm_helpers importable (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from speech_lm_helpers import ByteChat, tiny_split  # noqa: E402


@pytest.fixture
def split_pair():
    return tiny_split()


@pytest.fixture
def byte_chat():
    return ByteChat()
