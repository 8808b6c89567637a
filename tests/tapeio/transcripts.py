"""Real hardware transcripts, kept in the repository at tests/fixtures/hardware (see SOURCES.md there)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hardware"


def fixture(name: str) -> str:
    """The text of one hardware transcript; fails loudly when it is missing."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"Hardware transcript {name} not found in {FIXTURES}: it belongs to the repository.")
    return path.read_text(encoding="utf-8")
