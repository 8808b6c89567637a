"""What every command shares (``cli/app.py``): the embedded default
configuration on first use, choosing the drive and library ($PYTP_DEV,
$PYTP_LIB, the first free drive), and a drive another pytp holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pytp.catalog.config import read_config
from pytp.catalog.devices import drive_lock
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.cli.runner import invoke
from tests.conftest import write_library_config


def test_embedded_default_is_created_on_first_use(source_tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["backup", str(source_tree / "docs")])
    assert result.exit_code == 0, result.output
    assert "created the embedded default configuration" in result.stderr
    assert "Job 1 ok" in result.stdout
    config = json.loads((Path(os.environ["XDG_CONFIG_HOME"]) / "pytp" / "config.json").read_text())
    assert config["tape_libraries"][0]["type"] == "virtual"
    listing = runner.invoke(cli, ["list", "--format", "json"])
    rows = json.loads(listing.stdout)
    assert len([r for r in rows if r["element"].startswith("slot")]) == 8
    assert "created the embedded" not in runner.invoke(cli, ["config"]).stderr


def test_environment_selects_drive_and_library(tmp_path: Path, sqlite_url: str, source_tree: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config = write_library_config(tmp_path / "site", sqlite_url)
    monkeypatch.setenv("PYTP_DEV", "d1")
    invoke(config, "backup", str(source_tree / "docs"), "--keep-loaded")
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
        out = invoke(config, "backup", str(source_tree / "docs"), "--keep-loaded").stdout
    assert "Job 1 ok" in out
    status = json.loads(invoke(config, "status", "-d", "d1", "--format", "json").stdout)[0]
    assert status["online"] and status["barcode"] == "PYT001L9"


def test_second_pytp_on_the_same_drive_is_busy(run, source_tree: Path) -> None:
    # Another pytp process holds drive d0 (through the same lock a command takes).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pytp.catalog.config import read_config; from pytp.catalog.devices import drive_lock\n"
            f"cfg = read_config(__import__('pathlib').Path({str(run.config)!r}), 'x')\n"
            "with drive_lock(cfg.drive('d0')):\n print('locked', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout.readline().strip() == b"locked"  # type: ignore[union-attr]
        r = run("rewind", "-d", "d0", expect=exitcodes.EXIT_DRIVE)
        assert f"Error: Drive d0 is busy: used by pid {holder.pid}" in r.stderr
        r = run("backup", str(source_tree), "-d", "d0", expect=exitcodes.EXIT_DRIVE)
        assert "is busy" in r.stderr
        assert json.loads(run("jobs", "--format", "json").stdout) == []  # no job was left "running"
    finally:
        holder.kill()
        holder.wait()


def test_pytp_config_never_prints_the_catalog_password(tmp_path: Path) -> None:
    """The first command an administrator runs and pastes into a ticket printed it in clear."""
    config = tmp_path / "pg.json"
    config.write_text(json.dumps({"catalog": {"url": "postgresql+psycopg://backup:s3cret@db.example:5432/pytp"}}))
    for args in ((), ("--format", "json")):
        out = invoke(config, "config", *args).stdout
        assert "s3cret" not in out and "backup:***@db.example:5432/pytp" in out, out


def test_output_into_a_pipe_nobody_reads_ends_quietly_with_its_own_code() -> None:
    """`pytp jobs | head -1` printed 'Error: Broken pipe.' with exit 3 about one time in two."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before pytp writes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytp.cli.main", "exit-codes"], stdout=write, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write)
    assert done.returncode == exitcodes.EXIT_PIPE, done.stderr
    assert done.stderr == ""


def test_an_option_of_one_value_given_twice_is_a_usage_error(tmp_path: Path) -> None:
    """click kept the last: `restore --job 1 --job 14` restored job 14 and said nothing of job 1."""
    config = tmp_path / "none.json"  # never read: the command line is refused first
    for args in (
        ("restore", str(tmp_path / "out"), "--job", "1", "--job", "14"),
        ("verify", "--job", "1", "--job=5"),
        ("search", "x", "--limit", "1", "--limit", "2"),
    ):
        result = CliRunner().invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == exitcodes.EXIT_USAGE, (args, result.output)
        assert "was given twice" in result.stderr
    # repeatable options and flags, and a value that looks like an option, are fine
    parsed = CliRunner().invoke(
        cli, ["--config", str(config), "backup", "--exclude", "--job", "--exclude", "b", "-q", "-q", "/nonexistent"]
    )
    assert "given twice" not in parsed.stderr


def test_pytp_config_is_named_as_such_and_a_wrong_one_is_a_configuration_error(tmp_path: Path) -> None:
    """click read $PYTP_CONFIG as if --config had been typed, and a directory there was exit 2."""
    for value, text in ((tmp_path / "none.json", "($PYTP_CONFIG) does not exist"), (tmp_path, "Is a directory")):
        result = CliRunner().invoke(cli, ["tapes"], env={"PYTP_CONFIG": str(value)})
        assert result.exit_code == exitcodes.EXIT_CONFIG, result.output
        assert text in result.stderr, result.stderr
