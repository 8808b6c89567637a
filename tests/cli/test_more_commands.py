"""The remaining commands and selection rules through CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from pytp.catalog.config import read_config
from pytp.catalog.devices import drive_lock
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_drive import create_virtual_drive, load_tape
from pytp.tapeio.virtual_tape import create_virtual_tape
from tests.conftest import write_library_config


def invoke(config: Path, *args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def test_goto_retension_status_exit_codes_config(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    invoke(config, "backup", str(source_tree))
    invoke(config, "rewind", "-d", "d0")
    invoke(config, "ff", "-d", "d0")
    assert invoke(config, "goto", "3", "-d", "d0").stdout.strip() == "3"
    assert invoke(config, "g", "-d", "d0").stdout.strip() == "3"
    status = json.loads(invoke(config, "status", "-d", "d0", "--format", "json").stdout)[0]
    assert (status["file_number"], status["block_number"], status["barcode"]) == (1, 3, "PYT001L9")
    # Retension the tape in slot 2 and put it back there.
    out = invoke(config, "retension", "-d", "d1", "--slot", "2", "-v").stdout
    assert "returning the tape to slot 2" in out
    rows = {r["element"]: r for r in json.loads(invoke(config, "list", "--format", "json").stdout)}
    assert rows["slot 2"]["full"] and not rows["drive 1"]["full"]
    assert "restore-refused" in invoke(config, "exit-codes").stdout
    shown = invoke(config, "config").stdout
    assert f"Configuration: {config} (--config)" in shown and "d0" in shown
    assert json.loads(invoke(config, "config", "--json").stdout)["tape_libraries"][0]["name"] == "lib"


def test_library_add_virtual_and_use_it(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    out = invoke(
        config,
        "library",
        "add-virtual",
        "small",
        "--path",
        str(tmp_path / "small"),
        "--drives",
        "1",
        "--slots",
        "3",
        "--tapes",
        "2",
        "--tape-size",
        "32M",
        "--block-size",
        "64K",
    ).stdout
    assert "Created virtual library 'small'" in out
    parsed = read_config(config, "x")
    assert parsed.library("small").drives == ("small-drive0",)
    assert parsed.drive("small-drive0").block_size == 65536
    rows = json.loads(invoke(config, "list", "-l", "small", "--format", "json").stdout)
    barcodes = [r["barcode"] for r in rows if r["full"]]
    prefix = barcodes[0][:3]  # "S" for small, then two letters unique to this host and library
    assert re.fullmatch(r"S[A-Z]{2}", prefix) and barcodes == [f"{prefix}001L9", f"{prefix}002L9"]
    assert f"on tape {prefix}001L9" in invoke(config, "backup", str(source_tree / "docs"), "-l", "small").stdout
    invoke(config, "library", "add-virtual", "small", expect=exitcodes.EXIT_CONFIG)


def test_environment_selects_drive_and_library(tmp_path: Path, sqlite_url: str, source_tree: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", sqlite_url)
    monkeypatch.setenv("PYTP_DEV", "d1")
    invoke(config, "backup", str(source_tree / "docs"))
    status = json.loads(invoke(config, "status", "--format", "json").stdout)[0]
    assert status["drive"] == "d1" and status["online"]
    monkeypatch.setenv("PYTP_LIB", "nolib")
    monkeypatch.delenv("PYTP_DEV")
    r = invoke(config, "list", expect=exitcodes.EXIT_CONFIG)
    assert "Unknown library 'nolib'" in r.stderr


def test_first_free_drive_of_the_library_is_used(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    parsed = read_config(config, "x")
    with drive_lock(parsed.drive("d0")):  # another pytp is using d0
        out = invoke(config, "backup", str(source_tree / "docs")).stdout
    assert "Job 1 ok" in out
    status = json.loads(invoke(config, "status", "-d", "d1", "--format", "json").stdout)[0]
    assert status["online"] and status["barcode"] == "PYT001L9"


def test_partial_job_exits_with_warning(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    from tests.conftest import unlistable_xattrs_file

    config = write_library_config(tmp_path / "site", sqlite_url)
    # A file whose xattrs cannot be listed makes the job partial (a socket is only a note now).
    with unlistable_xattrs_file() as crowded:
        r = invoke(config, "backup", str(source_tree), str(crowded.parent), expect=exitcodes.EXIT_WARNING)
    assert "Job 1 partial" in r.stdout
    assert "Warning:" in r.stderr and "crowded.txt" in r.stderr
    assert json.loads(invoke(config, "jobs", "--format", "json").stdout)[0]["problems"] == 1


def test_standalone_drive_with_a_tape_of_another_pool(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    drive = create_virtual_drive(tmp_path / "drive")
    load_tape(drive, create_virtual_tape(tmp_path / "tape", "LONE01L9", 64 << 20))
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "catalog": {"url": sqlite_url},
                "pools": [{"name": "default"}, {"name": "offsite"}],
                "tape_drives": [{"name": "solo", "device_path": str(drive), "block_size": 65536, "type": "virtual"}],
            }
        )
    )
    invoke(config, "rewind")
    assert "Job 1 ok" in invoke(config, "backup", str(source_tree / "docs")).stdout
    r = invoke(config, "backup", str(source_tree / "docs"), "--pool", "offsite", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "belongs to pool 'default'" in r.stderr and "--pool default" in r.stderr
    r = invoke(config, "backup", str(source_tree / "docs"), "--pool", "nosuch", expect=exitcodes.EXIT_CONFIG)
    assert "Unknown pool 'nosuch'" in r.stderr
    r = invoke(config, "load", "1", expect=exitcodes.EXIT_CONFIG)
    assert "not in a library" in r.stderr
