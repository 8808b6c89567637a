"""Labels, pools, retention and recycling on a virtual library."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import Volume, VolumeStatus
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_changer import add_tape
from tests.conftest import write_library_config


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    pools = [
        {"name": "default", "retention_days": 30},
        {"name": "scratch", "retention_days": 0},
        {"name": "archive", "retention_days": 3650, "label_prefix": "ARC"},
        {"name": "vault", "barcodes": ["PYT003L9"]},
    ]
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=3, slots=6, pools=pools)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    run.library = tmp_path / "site" / "lib"  # type: ignore[attr-defined]
    run.url = sqlite_url  # type: ignore[attr-defined]
    return run


def tapes(run) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {t["label"]: t for t in json.loads(run("tapes", "--format", "json").stdout) if t["label"]}  # not the blanks


def test_label_by_slot_and_all_barcodes_skipping_cleaning(site) -> None:  # type: ignore[no-untyped-def]
    add_tape(site.library, "CLN001L1", 5)
    assert (
        "Labelled tape PYT002L9 (barcode PYT002L9) in pool scratch"
        in site("label", "--slot", "2", "--pool", "scratch").stdout
    )
    lines = site("label", "--barcodes").stdout.splitlines()
    assert "PYT001L9: labelled PYT001L9 in pool default" in lines
    assert "PYT003L9: reserved for another pool, skipped" in lines  # listed for the vault pool
    assert "CLN001L1: cleaning cartridge, skipped" in lines
    known = tapes(site)
    assert sorted(known) == ["PYT001L9", "PYT002L9"]
    assert "in pool vault" in site("label", "--slot", "3", "--pool", "vault").stdout
    assert known["PYT002L9"]["pool"] == "scratch" and known["PYT002L9"]["retention_end"] is None


def test_relabel_refused_while_in_retention_then_forced(site, source_tree: Path) -> None:  # type: ignore[no-untyped-def]
    site("backup", str(source_tree / "docs"))
    tape_dir = site.library / "tapes" / "PYT001L9"
    before = sorted(p.name for p in tape_dir.iterdir())
    r = site("label", "--barcode", "PYT001L9", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "holds data in retention until" in r.stderr and "--force" in r.stderr
    r = site("label", "--barcode", "PYT001L9", "--force", "--confirm", "WRONG", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "typed again" in r.stderr
    assert sorted(p.name for p in tape_dir.iterdir()) == before  # untouched
    assert (tape_dir / "file-00001").exists()
    site("label", "--barcode", "PYT001L9", "--force", "--confirm", "PYT001L9")
    assert not (tape_dir / "file-00001").exists()
    site("search", "report.txt", expect=exitcodes.EXIT_NOT_FOUND)  # the old data is gone from the catalog too
    assert tapes(site)["PYT001L9"]["files"] == 0


def test_label_that_disagrees_with_the_barcode_is_refused(site, source_tree: Path) -> None:  # type: ignore[no-untyped-def]
    site("label", "--slot", "1")
    # An operator copied cartridge PYT001L9 onto PYT003L9: its label names the wrong barcode.
    source, copy = site.library / "tapes" / "PYT001L9", site.library / "tapes" / "PYT003L9"
    shutil.copy(source / "file-00000", copy / "file-00000")
    meta = json.loads((copy / "tape.json").read_text())
    meta["block_size"] = json.loads((source / "tape.json").read_text())["block_size"]
    (copy / "tape.json").write_text(json.dumps(meta))
    site("load", "3", "-d", "d0")
    r = site("backup", str(source_tree / "docs"), "-d", "d0", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "has barcode PYT003L9, but its label 'PYT001L9' was written for barcode PYT001L9" in r.stderr


def test_pool_label_prefix_reserves_cartridges(site, source_tree: Path) -> None:  # type: ignore[no-untyped-def]
    r = site("backup", str(source_tree / "docs"), "--pool", "archive", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "No appendable, blank or expired tape for pool 'archive'" in r.stderr
    add_tape(site.library, "ARC001L9", 6)
    assert "on tape ARC001L9" in site("backup", str(source_tree / "docs"), "--pool", "archive").stdout
    # ... and the default pool never takes an ARC cartridge.
    assert "on tape PYT001L9" in site("backup", str(source_tree / "docs")).stdout


def test_expired_tape_is_recycled_only_when_nothing_else_is_left(site, source_tree: Path) -> None:  # type: ignore[no-untyped-def]
    first = site("backup", str(source_tree / "docs"), "--pool", "scratch").stdout
    assert "on tape PYT001L9" in first
    assert tapes(site)["PYT001L9"]["status"] == "expired"  # retention 0 days
    engine = open_catalog(site.url)
    with Session(engine) as session:
        volume = session.exec(select(Volume).where(Volume.label == "PYT001L9")).one()
        volume.status = VolumeStatus.FULL
        session.add(volume)
        session.commit()
    # Blank tapes are still there: they are taken before the expired one is recycled.
    assert "on tape PYT002L9" in site("backup", str(source_tree / "docs"), "--pool", "scratch").stdout
    with Session(engine) as session:
        for v in session.exec(select(Volume)).all():
            v.status = VolumeStatus.FULL
            session.add(v)
        session.commit()
    site("label", "--slot", "3", "--pool", "vault")  # no blank left for scratch
    third = site("backup", str(source_tree / "docs"), "--pool", "scratch").stdout
    assert "on tape PYT001L9" in third  # the first to expire was recycled
    assert tapes(site)["PYT001L9"]["jobs"] == 1


def test_a_failed_label_write_gives_its_reservation_back(site) -> None:  # type: ignore[no-untyped-def]
    """The volume row is reserved before the label is written (issue 9); a write that fails removes it."""
    from pytp.tapeio.virtual_tape import configure_tape

    configure_tape(site.library / "tapes" / "PYT001L9", write_errors=[(0, 0)])
    result = site("label", "--slot", "1", expect=exitcodes.EXIT_DRIVE)
    assert "Traceback" not in result.output
    with Session(open_catalog(site.url)) as session:
        assert session.exec(select(Volume)).all() == []
    configure_tape(site.library / "tapes" / "PYT001L9", write_errors=[])
    # The half-written tape needs --force, but the name is free again in the catalog.
    relabelled = site("label", "--force", "--confirm", "PYT001L9")
    assert "PYT001L9" in relabelled.stdout


def test_a_barcode_another_library_has_is_refused_at_label(site) -> None:  # type: ignore[no-untyped-def]
    """Two cartridges with one barcode in libraries sharing a catalog: caught at `pytp label`, not at 2 a.m."""
    with Session(open_catalog(site.url)) as session:
        theirs = Volume(label="THEIRS1", uuid="u-1", barcode="PYT002L9", pool="default", block_size=65536)
        theirs.library = "other"
        session.add(theirs)
        session.commit()
    result = site("label", "--slot", "2", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "Barcode PYT002L9 is already tape 'THEIRS1' of library other" in result.stderr
    with Session(open_catalog(site.url)) as session:
        assert [v.label for v in session.exec(select(Volume)).all()] == ["THEIRS1"]
