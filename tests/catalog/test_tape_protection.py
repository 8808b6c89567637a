"""What a tape protects, and what happens to a tape that disagrees with the catalog.

Issue 8, defects 8 and 9: a tape whose file count disagrees with the catalog
is set aside (``error``, with the reason in ``pytp tapes``) and the next tape
used; a tape is protected while it holds a good job in retention or the
newest catalog snapshot, and only then.  Default 512 KiB blocks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import write_library_config

BLOCK = 512 << 10


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    pools = [{"name": "default", "retention_days": 30}, {"name": "scratch", "retention_days": 0}]
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=4, slots=6, pools=pools, block_size=BLOCK)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run.library = tmp_path / "site" / "lib"  # type: ignore[attr-defined]
    return run


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.txt").write_text("some data\n")
    (root / "b.bin").write_bytes(os.urandom(300_000))
    return root


def tapes(run) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {t["label"]: t for t in json.loads(run("tapes", "--format", "json").stdout)}


def test_the_tape_with_the_newest_catalog_snapshot_is_protected(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    site("backup", str(src), "--pool", "scratch")  # retention 0 days: expired at once
    assert tapes(site)["PYT001L9"]["status"] == "expired"
    site("catalog", "backup", "--pool", "scratch")
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "appendable" and shown["note"] == "holds the newest catalog snapshot"
    assert "holds the newest catalog snapshot" in site("tapes").stdout
    r = site("label", "--barcode", "PYT001L9", "--pool", "scratch", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "holds the newest catalog snapshot" in r.stderr and "--force" in r.stderr
    assert (site.library / "tapes" / "PYT001L9" / "file-00002").exists()  # untouched
    # A newer snapshot on another tape: the first tape's expiry shows again.
    site("label", "--barcode", "PYT002L9", "--pool", "scratch")
    site("catalog", "backup", "--pool", "scratch")
    shown = tapes(site)
    assert shown["PYT001L9"]["status"] == "expired" and shown["PYT001L9"]["note"] is None
    assert shown["PYT002L9"]["note"] == "holds the newest catalog snapshot"
    assert "Relabelled tape PYT001L9" in site("label", "--barcode", "PYT001L9", "--pool", "scratch").stdout


def test_a_tape_holding_only_the_catalog_snapshot_is_not_expired(site) -> None:  # type: ignore[no-untyped-def]
    site("catalog", "backup")
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "appendable" and shown["retention_end"] is None
    site("label", "--barcode", "PYT001L9", expect=exitcodes.EXIT_WRONG_TAPE)


def test_a_tape_of_failed_jobs_only_is_not_shown_expired_and_protects_nothing(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    site("label", "--barcode", "PYT001L9")
    configure_tape(site.library / "tapes" / "PYT001L9", write_errors=[(1, 0)])
    site("backup", str(src), expect=exitcodes.EXIT_DRIVE)
    jobs = json.loads(site("jobs", "--format", "json").stdout)
    assert [j["status"] for j in jobs] == ["failed"]
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "appendable" and shown["retention_end"] is None and shown["tape_files"] > 1
    # Nothing on it is offered for restore, so nothing needs --force.
    assert "Relabelled tape PYT001L9" in site("label", "--barcode", "PYT001L9").stdout


def test_a_tape_that_disagrees_with_the_catalog_is_set_aside_and_the_next_one_used(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    assert "on tape PYT001L9" in site("backup", str(src)).stdout
    # Something other than pytp appended a tape file (as `mt eod; tar -cf /dev/nst0` would).
    tape = site.library / "tapes" / "PYT001L9"
    (tape / "file-00003").write_bytes(b"\0" * BLOCK)
    second = site("backup", str(src))
    assert "Job 2 ok" in second.stdout and "on tape PYT002L9" in second.stdout
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "error"
    assert "holds 4 tape files but the catalog expects 3" in shown["note"]
    table = site("tapes").stdout
    assert "error" in table and "holds 4 tape files" in table
    assert (tape / "file-00003").read_bytes() == b"\0" * BLOCK  # nothing written over it
    # The next backups do not even look at it.
    assert "on tape PYT002L9" in site("backup", str(src)).stdout
    # Relabelling (it holds data in retention, so with --force) returns it to use.
    site("label", "--barcode", "PYT001L9", "--force", "--confirm", "PYT001L9")
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "appendable" and shown["note"] is None


def test_when_every_tape_disagrees_the_error_says_which_were_set_aside(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    site("backup", str(src))
    (site.library / "tapes" / "PYT001L9" / "file-00003").write_bytes(b"\0" * BLOCK)
    for barcode in ("PYT002L9", "PYT003L9", "PYT004L9"):
        site("label", "--barcode", barcode, "--pool", "scratch")
    r = site("backup", str(src), expect=exitcodes.EXIT_WRONG_TAPE)
    assert "No appendable, blank or expired tape for pool 'default'" in r.stderr
    assert "Tape PYT001L9 was set aside (status error)" in r.stderr


def _blank(tape: Path) -> None:
    """What a relabel killed between cutting the tape and writing the label leaves (or an erased tape)."""
    for file in tape.glob("file-*"):
        file.unlink()


def test_a_known_tape_found_blank_is_labelled_again_when_nothing_on_it_needs_keeping(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    site("label", "--barcode", "PYT001L9")
    _blank(site.library / "tapes" / "PYT001L9")
    result = site("backup", str(src))
    assert "Job 1 ok" in result.stdout and "on tape PYT001L9" in result.stdout
    assert tapes(site)["PYT001L9"]["status"] == "appendable"


def test_a_known_tape_found_blank_with_data_in_retention_is_set_aside(site, src: Path) -> None:  # type: ignore[no-untyped-def]
    site("backup", str(src))
    _blank(site.library / "tapes" / "PYT001L9")
    result = site("backup", str(src))
    assert "Job 2 ok" in result.stdout and "on tape PYT002L9" in result.stdout
    shown = tapes(site)["PYT001L9"]
    assert shown["status"] == "error" and "is blank, but the catalog records data on it" in shown["note"]
    assert not list((site.library / "tapes" / "PYT001L9").glob("file-*"))  # not labelled over
