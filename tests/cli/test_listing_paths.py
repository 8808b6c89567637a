"""The listings read the same through either path (issue 9): ``light_sql``'s
stdlib sqlite3 reader and the full open (``open_catalog`` and SQLAlchemy Core),
byte for byte in every format, after real jobs on the virtual library, on
SQLite and PostgreSQL; and both agree with the values the ORM reads.

On PostgreSQL only the full open exists; the comparison there is with the
ORM's typed values (timestamps with their zone, bytes), which plain SQL gets
untyped from the driver."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytp.catalog import light_sql
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from tests.cli.runner import invoke
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10
FORMATS = ("table", "json", "csv")


@pytest.fixture
def site(tmp_path: Path, catalog_url: str) -> Path:
    """A library after two backups in the default pool, one in a pool of no retention, a verify, a retired tape."""
    pools = [{"name": name, "retention_days": 30} for name in ("default", "offsite", "scratch")]
    config = write_library_config(tmp_path / "site", catalog_url, block_size=BLOCK, tape_size=256 << 20, pools=pools)
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    invoke(config, "backup", str(src), "--job", "home", "-q")
    (src / "later.txt").write_text("added\n")
    invoke(config, "backup", str(src), "--job", "home", "--level", "incremental", "-q")
    invoke(config, "backup", str(src), "--job", "away", "--pool", "offsite", "-q")
    invoke(config, "verify", "--job", "1")
    invoke(config, "pools", "edit", "offsite", "--retention-days", "0")  # its tape shows expired
    invoke(config, "backup", str(src), "--job", "spare", "--pool", "scratch", "-q")
    spare = json.loads(invoke(config, "jobs", "4", "--format", "json").stdout)[0]["tape_files"][0]["tape"]
    invoke(config, "tape", "retire", spare)
    return config


def _commands(config: Path) -> list[list[str]]:
    tapes = json.loads(invoke(config, "tapes", "--format", "json").stdout)
    labels = [row["label"] for row in tapes if row["label"]]
    assert len(labels) == 3 and any(row["status"] == "blank" for row in tapes)
    listings = [["tapes"], ["jobs"], ["jobs", "--limit", "2", "--host", "all"], ["pools"]]
    listings += [["tapes", label] for label in labels]
    return [[*command, "--format", fmt] for command in listings for fmt in FORMATS]


def test_the_sqlite_reader_and_the_full_open_print_the_same(
    site: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[bool] = []
    open_sqlite = light_sql.open_sqlite

    def watched(url: str):  # type: ignore[no-untyped-def]
        connection = open_sqlite(url)
        opened.append(connection is not None)
        return connection

    monkeypatch.setattr(light_sql, "open_sqlite", watched)
    commands = _commands(site)
    opened.clear()
    light = [invoke(site, *command).stdout for command in commands]
    # SQLite at the head with nothing to reconcile: every listing took sqlite3; PostgreSQL never can
    assert opened == [catalog_url.startswith("sqlite")] * len(commands)
    monkeypatch.setattr(light_sql, "open_sqlite", lambda url: None)
    full = [invoke(site, *command).stdout for command in commands]
    for command, a, b in zip(commands, light, full):
        assert a == b, command
    assert any("expired" in text for text in light) and any("retired" in text for text in light)


def _iso(value: datetime | None) -> str | None:
    """What the listings printed before they read plain SQL: the ORM's datetime, UTC when naive."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat(timespec="seconds")


def test_the_listings_show_what_the_orm_reads(site: Path, catalog_url: str) -> None:
    from sqlmodel import Session, select

    from pytp.catalog.models import Job, TapeFile, Volume
    from pytp.catalog.volumes import retention_end, shown_status

    config = read_config(site, "--config")
    jobs = {row["id"]: row for row in json.loads(invoke(site, "jobs", "--format", "json").stdout)}
    tapes = {row["label"]: row for row in json.loads(invoke(site, "tapes", "--format", "json").stdout)}
    engine = open_catalog(catalog_url)
    try:
        with Session(engine) as session:
            for job in session.exec(select(Job)).all():
                shown = jobs[job.id]
                assert job.ended_at is not None
                assert shown["start"] == _iso(job.started_at)
                assert shown["duration"] == round((job.ended_at - job.started_at).total_seconds(), 1)
                assert (shown["status"], shown["files"], shown["bytes"]) == (job.status, job.files, job.total_bytes)
            for volume in session.exec(select(Volume)).all():
                shown = tapes[volume.label]
                end = retention_end(session, config, volume)
                assert shown["status"] == shown_status(session, config, volume)
                assert shown["retention_end"] == ("forever" if end and end.year == 9999 else _iso(end))
                assert shown["last_written"] == _iso(volume.last_written_at)
                assert shown["bytes_written"] == volume.bytes_written
                detail = json.loads(invoke(site, "tapes", volume.label, "--format", "json").stdout)[0]
                files: list[Any] = session.exec(select(TapeFile).where(TapeFile.volume_id == volume.id)).all()
                roots = {f.file_number: f.source_root for f in files}
                assert {f["file_number"]: f["source"] for f in detail["tape_file_list"]} == {
                    n: root.decode("utf-8", "surrogateescape") if root else None for n, root in roots.items()
                }
                for job_row in detail["job_list"]:
                    job = session.get(Job, job_row["id"])
                    assert job is not None
                    assert (job_row["start"], job_row["end"]) == (_iso(job.started_at), _iso(job.ended_at))
    finally:
        engine.dispose()
