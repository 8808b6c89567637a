"""The inventory (issue 11, part 3): ``pytp tapes``, ``pytp tapes TAPE``,
``pytp pools`` (create/edit through the configuration file) and
``pytp tape retire|unretire``, after real backups at the default 512 KiB
blocks, on the embedded default library and on a configured one."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from pytp.catalog.inventory import POOL_FIELDS, TAPE_FIELDS
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.cli.runner import invoke
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _default(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    """``pytp`` with nothing configured: the embedded default library."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def _zoned(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def test_default_library_lists_tapes_blanks_and_one_tape(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    _default("backup", str(src), "--job", "first", "--keep-loaded")
    rows = json.loads(_default("tapes", "--format", "json").stdout)
    assert all(list(r) == list(TAPE_FIELDS) for r in rows)
    written = [r for r in rows if r["label"]]
    assert len(written) == 1
    tape = written[0]
    assert tape["location"] == "vlib:drive vlib-drive0" and tape["drive"] == "vlib-drive0"
    assert tape["status"] == "appendable" and tape["pool"] == "default" and tape["jobs"] == 1
    assert tape["capacity"] == 4 << 30 and tape["bytes_written"] % BLOCK == 0 and tape["bytes_written"] > 0
    assert tape["free"] == tape["capacity"] - tape["bytes_written"]
    assert tape["free_pct"] == round(100 * tape["free"] / tape["capacity"], 1)
    assert tape["used_pct"] == round(100 * tape["bytes_written"] / tape["capacity"], 1)
    assert tape["last_verified"] is None and tape["expired_at"] is None
    _zoned(tape["last_written"])
    _zoned(tape["retention_end"])
    # The seven cartridges never loaded are listed from the changer's inventory.
    blanks = [r for r in rows if r["status"] == "blank"]
    assert [r["slot"] for r in blanks] == list(range(2, 9))
    assert all(r["label"] is None and r["barcode"] and r["location"] == f"vlib:slot {r['slot']}" for r in blanks)

    job = json.loads(_default("jobs", "--format", "json").stdout)[0]
    _zoned(job["start"])
    assert "+00:00" in _default("jobs").stdout  # the table too

    one = json.loads(_default("tapes", tape["label"], "--format", "json").stdout)[0]
    assert [(j["id"], j["name"], j["status"]) for j in one["job_list"]] == [(1, "first", "ok")]
    _zoned(one["job_list"][0]["start"])
    files = one["tape_file_list"]
    assert [(f["file_number"], f["kind"], f["job"], f["status"]) for f in files] == [
        (1, "data", 1, "complete"),
        (2, "manifest", 1, "complete"),
    ]
    assert files[0]["source"] == str(src)
    assert all(f["bytes"] == f["blocks"] * BLOCK for f in files)
    as_csv = list(csv.DictReader(io.StringIO(_default("tapes", tape["label"], "--format", "csv").stdout)))
    assert [r["file_number"] for r in as_csv] == ["1", "2"] and as_csv[0]["source"] == str(src)
    assert "Tape files:" in _default("tapes", tape["barcode"]).stdout
    _default("tapes", "NOSUCH", expect=exitcodes.EXIT_NOT_FOUND)


def test_formats_share_field_names(tmp_path: Path) -> None:
    _default("backup", str(make_tree(tmp_path / "src")))
    for command, fields in (("tapes", TAPE_FIELDS), ("pools", POOL_FIELDS)):
        as_json = json.loads(_default(command, "--format", "json").stdout)
        as_csv = list(csv.DictReader(io.StringIO(_default(command, "--format", "csv").stdout)))
        assert list(as_json[0]) == list(fields) == list(as_csv[0])
        assert len(as_json) == len(as_csv)


def _config(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url, tapes=1, block_size=BLOCK)


def test_retired_tape_is_refused_for_backup_but_restorable(tmp_path: Path, sqlite_url: str) -> None:
    config = _config(tmp_path, sqlite_url)
    src = make_tree(tmp_path / "src")
    invoke(config, "backup", str(src))
    label = json.loads(invoke(config, "tapes", "--format", "json").stdout)[0]["label"]
    assert "now retired" in invoke(config, "tape", "retire", label).stdout
    tape = json.loads(invoke(config, "tapes", "--format", "json").stdout)[0]
    assert tape["status"] == "retired" and tape["location"].startswith("lib:")

    # The library's only tape is retired: nothing to write to.
    refused = invoke(config, "backup", str(src), expect=exitcodes.EXIT_WRONG_TAPE)
    assert "No appendable, blank or expired tape" in refused.stderr
    # Past retention it is still not recycled.
    invoke(config, "pools", "edit", "default", "--retention-days", "0")
    assert json.loads(invoke(config, "tapes", "--format", "json").stdout)[0]["status"] == "retired"
    invoke(config, "backup", str(src), expect=exitcodes.EXIT_WRONG_TAPE)
    pools = {p["pool"]: p for p in json.loads(invoke(config, "pools", "--format", "json").stdout)}
    assert pools["default"]["retired"] == 1 and pools["default"]["tapes"] == 1

    out = tmp_path / "out"
    invoke(config, "restore", str(out), "--job", "1")
    restored = out / str(src).lstrip("/")
    assert (restored / "docs/deep/er/notes.md").read_text() == (src / "docs/deep/er/notes.md").read_text()

    invoke(config, "tape", "unretire", label)
    tape = json.loads(invoke(config, "tapes", "--format", "json").stdout)[0]
    # Back in use, and with retention 0 its data has left retention: expired, with the date.
    assert tape["status"] == "expired"
    assert _zoned(tape["expired_at"]) == _zoned(tape["retention_end"]) <= datetime.now().astimezone()
    invoke(config, "tape", "retire", "NOSUCH", expect=exitcodes.EXIT_NOT_FOUND)


def test_pools_create_and_edit_round_trip_through_the_file(tmp_path: Path, sqlite_url: str) -> None:
    config = _config(tmp_path, sqlite_url)
    invoke(config, "pools", "create", "weekly", "--retention-days", "14", "--label-prefix", "WK")
    stored = {p["name"]: p for p in json.loads(config.read_text())["pools"]}
    assert stored["weekly"] == {"name": "weekly", "retention_days": 14, "label_prefix": "WK"}
    assert stored["offsite"] == {"name": "offsite", "retention_days": 365}  # the others untouched
    invoke(config, "pools", "create", "weekly", "--retention-days", "1", expect=exitcodes.EXIT_CONFIG)

    invoke(config, "pools", "edit", "weekly", "--retention-days", "21", "--label-prefix", "")
    stored = {p["name"]: p for p in json.loads(config.read_text())["pools"]}
    assert stored["weekly"] == {"name": "weekly", "retention_days": 21}
    listed = {p["pool"]: p for p in json.loads(invoke(config, "pools", "--format", "json").stdout)}
    assert listed["weekly"]["retention_days"] == 21 and listed["weekly"]["label_prefix"] is None
    # The library's blank cartridge counts for a pool that would take it.
    assert listed["default"]["blank"] == 1 and listed["default"]["tapes"] == 0

    invoke(config, "pools", "edit", "nosuch", "--retention-days", "1", expect=exitcodes.EXIT_CONFIG)
    invoke(config, "pools", "edit", "weekly", expect=exitcodes.EXIT_CONFIG)  # nothing to change
    before = config.read_text()
    invoke(config, "pools", "create", "bad", "--retention-days", "-1", expect=exitcodes.EXIT_USAGE)
    assert config.read_text() == before


def test_a_tape_in_no_configured_library_is_outside(tmp_path: Path, sqlite_url: str) -> None:
    config = _config(tmp_path, sqlite_url)
    invoke(config, "backup", str(make_tree(tmp_path / "src")))
    data = json.loads(config.read_text())
    data["tape_libraries"] = []
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(data))
    tape = json.loads(invoke(elsewhere, "tapes", "--format", "json").stdout)[0]
    assert (tape["location"], tape["library"], tape["slot"], tape["drive"]) == ("outside", None, None, None)
    assert "outside" in invoke(elsewhere, "tapes").stdout
