"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.runner import invoke
from tests.conftest import write_library_config


class Run:
    """``pytp`` on a library of two drives and six slots (``write_library_config``).

    Call it with the command's arguments (and ``expect=`` the exit code); its
    ``config`` is the configuration file.
    """

    def __init__(self, config: Path) -> None:
        self.config = config

    def __call__(self, *args: str, expect: int = 0) -> Result:
        return invoke(self.config, *args, expect=expect)


@pytest.fixture
def run(tmp_path: Path, sqlite_url: str) -> Run:
    return Run(write_library_config(tmp_path / "site", sqlite_url))
