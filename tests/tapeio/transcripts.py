"""Real hardware transcripts from ../shared/fixtures/hardware (see SOURCES.md there)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "hardware"


def fixture(name: str) -> str:
    """The text of one hardware transcript; fails loudly when the folder is missing."""
    if not FIXTURES.is_dir():
        pytest.fail(
            f"Hardware transcripts not found at {FIXTURES}. The tests expect the shared folder "
            "'shared/fixtures/hardware' beside the repository root."
        )
    return (FIXTURES / name).read_text(encoding="utf-8")
