"""``pytp drives`` and ``pytp clean`` on the embedded default virtual library a new user gets.

TapeAlert flags and error counts are injected through the virtual drive's and
tape's fault configuration; the commands run through the real ``pytp`` group
(CliRunner), and once in a fresh interpreter to see what they import.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pytp.catalog.config import load_config
from pytp.catalog.devices import drive_lock
from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_CHANGER, EXIT_CONFIG
from pytp.tapeio.virtual_changer import VirtualChanger, add_tape
from pytp.tapeio.virtual_drive import configure_drive
from pytp.tapeio.virtual_tape import configure_tape
from tests.cli.test_startup_imports import _site_env, pytp

CLEANER = "CLN001L1"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new user's environment; the first command creates the default configuration and library."""
    for key, value in _site_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("PYTP_")]:
        monkeypatch.delenv(key)
    run("list")
    return tmp_path


def run(*args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


def _library() -> tuple[Path, list[Path]]:
    """The default library's directory and its drives' directories."""
    config = load_config(None)
    library = Path(config.libraries[0].device_path)
    return library, [Path(config.drive(name).device_path) for name in config.libraries[0].drives]


def _drives_json() -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(run("drives", "--format", "json").output)}


def test_drives_json_shows_injected_tapealert_and_counters(site: Path) -> None:
    library, (drive0, drive1) = _library()
    configure_drive(drive0, tapealert=[20, 3], error_counters={"write": {"corrected": 5, "uncorrected": 1}})
    run("load", "2", "--drive", "vlib-drive1")
    barcode = VirtualChanger(library).status().drive(1).barcode
    configure_tape(library / "tapes" / barcode, tapealert=[4], error_counters={"read": {"uncorrected": 2}})

    rows = _drives_json()
    assert list(rows) == ["vlib-drive0", "vlib-drive1"]
    first, second = rows["vlib-drive0"], rows["vlib-drive1"]
    assert first["tapealert"] == [
        {"number": 3, "name": "Hard error", "severity": "warning"},
        {"number": 20, "name": "Clean now", "severity": "critical"},
    ]
    assert first["needs_cleaning"] is True
    assert first["write_errors"] == {"corrected": 5, "uncorrected": 1, "bytes_processed": 0}
    assert (first["barcode"], first["library"], first["element"], first["busy"]) == (None, "vlib", 0, False)
    assert second["barcode"] == barcode
    assert second["tapealert"] == [{"number": 4, "name": "Media", "severity": "critical"}]
    assert second["needs_cleaning"] is False
    assert second["read_errors"] == {"corrected": 0, "uncorrected": 2, "bytes_processed": 0}

    table = run("drives").output
    assert "20 Clean now (critical)" in table and "5/1" in table
    csv_lines = run("drives", "--format", "csv").output.splitlines()
    assert csv_lines[0].startswith("name,type,device,library,barcode,busy,needs_cleaning,tapealert")
    assert csv_lines[2].startswith("vlib-drive1,virtual,") and barcode in csv_lines[2]


def test_a_drive_in_use_is_busy_and_still_shows_its_health(site: Path) -> None:
    _, (drive0, _) = _library()
    configure_drive(drive0, tapealert=[21])
    with drive_lock(load_config(None).drive("vlib-drive0")):
        row = _drives_json()["vlib-drive0"]
    assert (row["busy"], row["busy_pid"]) == (True, os.getpid())
    assert row["needs_cleaning"] is True
    assert _drives_json()["vlib-drive0"]["busy"] is False


def test_a_broken_library_or_drive_is_a_warning_not_a_failure(site: Path) -> None:
    library, (drive0, _) = _library()
    (library / "library.json").unlink()
    (drive0 / "state.json").unlink()
    result = run("drives", "--format", "json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["vlib-drive0"]["health_available"] is False and rows["vlib-drive0"]["barcode"] is None
    assert rows["vlib-drive1"]["health_available"] is True
    assert "library vlib: " in result.stderr and "drive vlib-drive0: health unavailable" in result.stderr
    assert "unavailable" in run("drives").stdout


def test_drives_never_imports_the_catalog_stack(tmp_path: Path) -> None:
    env = _site_env(tmp_path / "home")
    for args in (["drives"], ["drives", "--format", "json"]):
        proc, stack = pytp(env, *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert stack == set(), args
    assert '"name": "vlib-drive0"' in proc.stdout


def test_clean_loads_the_cleaning_cartridge_and_counts_its_uses(site: Path) -> None:
    library, (drive0, _) = _library()
    add_tape(library, CLEANER, 9)  # the import/export slot: every storage slot holds a data tape
    configure_drive(drive0, tapealert=[20, 3])
    run("load", "1", "--drive", "vlib-drive0")  # a data tape in the drive goes home first

    out = run("clean", "vlib-drive0").output
    assert f"Cleaned drive vlib-drive0 with {CLEANER} from slot 9 (use 1 of that cartridge)." in out
    changer = VirtualChanger(library)
    status = changer.status()
    assert not status.drive(0).full
    assert status.slot(9).barcode == CLEANER and status.slot(1).full
    row = _drives_json()["vlib-drive0"]
    assert row["needs_cleaning"] is False
    assert [f["number"] for f in row["tapealert"]] == [3]  # cleaning clears 20/21 only

    run("clean", "vlib-drive0")
    assert changer.cleaning_uses() == {CLEANER: 2}


def test_clean_without_a_cleaning_cartridge_or_with_an_unknown_drive(site: Path) -> None:
    result = run("clean", "vlib-drive0", expect=EXIT_CHANGER)
    assert "Error: Library vlib holds no cleaning cartridge" in result.stderr
    result = run("clean", "nosuch", expect=EXIT_CONFIG)
    assert "Error: Unknown drive 'nosuch'" in result.stderr
