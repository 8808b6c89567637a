"""`pytp retension --slot` through CliRunner: the tape already in the drive goes to its home slot first."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from tests.conftest import write_library_config


def invoke(config: Path, *args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_retension_returns_the_loaded_tape_to_an_empty_slot_when_its_own_was_taken(
    tmp_path: Path, sqlite_url: str
) -> None:
    # Slots 1-4 hold tapes, 5-6 are empty.
    config = write_library_config(tmp_path / "site", sqlite_url)
    invoke(config, "load", "1", "-d", "d0")
    invoke(config, "move", "2", "1")  # the operator filled slot 1 meanwhile: 2, 5 and 6 are empty
    out = invoke(config, "retension", "-d", "d0", "--slot", "3", "-v").stdout
    assert "unloading drive d0 to slot 2" in out and "returning the tape to slot 3" in out
    rows = {r["element"]: r for r in json.loads(invoke(config, "list", "--format", "json").stdout)}
    assert rows["slot 2"]["barcode"] == "PYT001L9" and rows["slot 3"]["barcode"] == "PYT003L9"
    assert not rows["drive 0"]["full"]
