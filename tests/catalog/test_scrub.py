"""``catalog/scrub.py``: which tapes a scrub picks and in which order, what it records, what a
damaged tape gets (issue 11, part 2).

Real backups and copies (``pytp backup``, ``pytp copy``) on a virtual library at the default
512 KiB blocks, real SQLite/PostgreSQL catalogs; damage is done to the virtual tape's bytes, error
counts through the tape's fault configuration.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, col, select

from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.models import HealthReading, Job, Volume, VolumeStatus
from pytp.catalog.scrub import Candidate, ScrubOptions, parse_duration, rank, run_scrub
from pytp.cli.main import cli
from pytp.tapeio.virtual_tape import configure_tape
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _pytp(config: Path, *args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


def _backup(config: Path, source: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    return json.loads(_pytp(config, "backup", str(source), *extra, "--format", "json").stdout)


@pytest.fixture
def site(tmp_path: Path, catalog_url: str) -> tuple[Path, str, Path]:
    config = write_library_config(tmp_path / "site", catalog_url, tapes=5, slots=7, block_size=BLOCK)
    return config, catalog_url, make_tree(tmp_path / "src")


def _scrub(config: Path, url: str, **options: object):  # type: ignore[no-untyped-def]
    cfg = read_config(config, "--config")
    return run_scrub(open_catalog(url), cfg, select_drive(cfg), ScrubOptions(**options))  # type: ignore[arg-type]


def _order(config: Path, url: str, **options: object) -> list[str]:
    return [c.label for c in _scrub(config, url, dry_run=True, **options).planned]


# --- pure parts ------------------------------------------------------------------------


def test_durations() -> None:
    assert parse_duration("180d") == timedelta(days=180)
    assert parse_duration("4h") == timedelta(hours=4)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("0") == timedelta(0)
    for bad in ("", "180", "4 hours", "-1h", "h", "1y", "4h;rm"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)


def _candidate(label: str, tier: int | None, growth: int = 0, copies: tuple[str, ...] = (), days: int = 0):
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=days) if tier else None
    return Candidate(0, label, "p", when, None, growth, list(copies), tier, "")


def test_rank_orders_by_need() -> None:
    tapes = [
        _candidate("GROWN", 2, growth=5),
        _candidate("FRESH", None),
        _candidate("OLD-COPIED", 1, copies=("C",), days=1),
        _candidate("OLDER", 1, days=0),
        _candidate("NEVER-COPIED", 0, copies=("C",)),
        _candidate("NEVER", 0),
        _candidate("NEVER-ERRORS", 0, growth=2),
        _candidate("GROWN-MORE", 2, growth=9),
    ]
    assert [c.label for c in rank(tapes)] == [
        "NEVER-ERRORS",  # never verified; growing errors first, then no copy
        "NEVER",
        "NEVER-COPIED",
        "OLDER",  # verified too long ago: oldest first
        "OLD-COPIED",
        "GROWN-MORE",  # recently verified but its error counts grew
        "GROWN",
    ]  # FRESH is not due


# --- on a library ----------------------------------------------------------------------


def test_growing_error_counts_and_missing_copies_come_first(site: tuple[Path, str, Path], tmp_path: Path) -> None:
    config, url, src = site
    first = _backup(config, src / "docs")
    second = _backup(config, src / "docs", "--pool", "offsite")
    a, b = first["tapes"][0], second["tapes"][0]
    assert a < b and _order(config, url) == [a, b]  # both never verified: by label

    # B's read errors grow (seen by the health reading after a restore that read it).
    configure_tape(tmp_path / "site" / "lib" / "tapes" / b, error_counters={"read": {"corrected": 7}})
    _pytp(config, "restore", str(tmp_path / "out"), "--job", str(second["job_id"]))
    assert _order(config, url) == [b, a]

    # Both verified clean now: nothing is due...
    result = _scrub(config, url)
    assert [(t.tape, t.result) for t in result.tapes] == [(b, "ok"), (a, "ok")]
    assert _order(config, url) == [] and _scrub(config, url).tapes == []
    # ...until A's counts grow after its last verify.
    configure_tape(tmp_path / "site" / "lib" / "tapes" / a, error_counters={"write": {"uncorrected": 1}})
    _pytp(config, "restore", str(tmp_path / "out2"), "--job", str(first["job_id"]))
    planned = _scrub(config, url, dry_run=True).planned
    assert [(c.label, c.growth, c.reason) for c in planned] == [(a, 1, "error counts grew by 1 since its last verify")]
    # And everything is due again once max-age says so.
    assert _order(config, url, max_age=timedelta(0)) == [b, a]  # B verified before A: oldest first


def test_a_tape_without_a_copy_comes_before_one_with_a_copy(site: tuple[Path, str, Path]) -> None:
    config, url, src = site
    a = _backup(config, src / "docs")["tapes"][0]
    b = _backup(config, src / "docs", "--pool", "offsite")["tapes"][0]
    _pytp(config, "copy", "--tape", a, "--pool", "offsite")
    engine = open_catalog(url)
    with Session(engine) as session:
        copy = session.exec(select(Volume).where(Volume.copy_of_id.is_not(None))).one()  # type: ignore[union-attr]
    assert copy.label not in (a, b)
    # B has no copy: first; then A.  The copy was read back when written (``pytp copy``): not due.
    assert _order(config, url) == [b, a]
    # Every tape is due with --max-age 0: the never verified ones first, and the copy tape is
    # verified too, its members checked against the entries of the tape files it mirrors.
    result = _scrub(config, url, max_age=timedelta(0))
    assert [(t.tape, t.result, t.checked) for t in result.tapes] == [(b, "ok", 5), (a, "ok", 5), (copy.label, "ok", 5)]
    assert result.tapes[2].copies == [a] and result.tapes[1].copies == [copy.label]


def test_a_damaged_tape_fails_is_set_aside_and_its_copy_named(site: tuple[Path, str, Path], tmp_path: Path) -> None:
    config, url, src = site
    job = _backup(config, src)
    a = job["tapes"][0]
    _pytp(config, "copy", "--tape", a, "--pool", "offsite")
    engine = open_catalog(url)
    with Session(engine) as session:
        copy = session.exec(select(Volume).where(Volume.label != a)).one().label
    data = tmp_path / "site" / "lib" / "tapes" / a / "file-00001"
    original = data.read_bytes()
    damaged = bytearray(original)
    damaged[1 << 20] ^= 0xFF  # inside big.bin's data
    data.write_bytes(bytes(damaged))

    result = _scrub(config, url)
    assert [t.tape for t in result.tapes] == [a]  # the copy was read back when it was written
    bad = result.tapes[0]
    assert bad.result == "failed" and "checksum mismatch" in bad.message and "big.bin" in bad.message
    assert bad.recopy == f"pytp copy --tape {copy} --pool offsite" and bad.copies == [copy]
    with Session(engine) as session:
        volume = session.exec(select(Volume).where(Volume.label == a)).one()
        assert (volume.status, volume.last_verify_result) == (VolumeStatus.ERROR, "failed")
        assert volume.status_reason.startswith("scrub failed on ") and "big.bin" in volume.status_reason
        log = session.get(Job, job["job_id"]).log  # type: ignore[union-attr]
        phases = {r.phase for r in session.exec(select(HealthReading)).all()}
    assert f"scrub of tape {a}: failed" in log and f"pytp copy --tape {copy}" in log
    assert {"scrub-before", "scrub"} <= phases
    # Set aside: the next scrub leaves it to the operator.
    again = _scrub(config, url, max_age=timedelta(0))
    assert (a, f"status error ({volume.status_reason}): left to the operator") in again.skipped
    assert [(t.tape, t.result) for t in again.tapes] == [(copy, "ok")]  # the copy still holds good data

    # The advice works as given: a second good copy, made from the first, mirroring the damaged original.
    _pytp(config, *bad.recopy.split()[1:])
    with Session(engine) as session:
        source = session.exec(select(Volume).where(Volume.label == a)).one()
        copies = session.exec(select(Volume).where(Volume.copy_of_id == source.id)).all()
    assert len(copies) == 2 and {c.pool for c in copies} == {"offsite"}

    # The bytes were only misread (say, a dirty head): a whole-tape verify that passes makes it full again.
    data.write_bytes(original)
    _pytp(config, "verify", "--tape", a)
    with Session(engine) as session:
        volume = session.exec(select(Volume).where(Volume.label == a)).one()
    assert (volume.status, volume.status_reason, volume.last_verify_result) == (VolumeStatus.FULL, None, "ok")


def test_an_expired_tape_is_skipped(site: tuple[Path, str, Path]) -> None:
    config, url, src = site
    a = _backup(config, src / "docs")["tapes"][0]  # pool default: 30 days of retention
    b = _backup(config, src / "docs", "--pool", "offsite")["tapes"][0]  # 365 days
    cfg = read_config(config, "--config")
    later = datetime.now(timezone.utc) + timedelta(days=40)
    result = run_scrub(open_catalog(url), cfg, select_drive(cfg), ScrubOptions(dry_run=True), now=later)
    assert [c.label for c in result.planned] == [b]
    assert result.skipped == [(a, "expired: nothing on it is kept any more")]


def test_a_verify_of_one_job_does_not_count_for_a_tape_holding_two(site: tuple[Path, str, Path]) -> None:
    config, url, src = site
    first = _backup(config, src / "docs")
    _backup(config, src / "docs")  # the same tape, a second job
    _pytp(config, "verify", "--job", str(first["job_id"]))
    with Session(open_catalog(url)) as session:
        volume = session.exec(select(Volume).where(Volume.label == first["tapes"][0])).one()
    assert volume.last_verified_at is None
    _pytp(config, "verify", "--tape", first["tapes"][0])
    with Session(open_catalog(url)) as session:
        volume = session.exec(select(Volume).where(Volume.label == first["tapes"][0])).one()
    assert volume.last_verified_at is not None and volume.last_verify_result == "ok"


def test_kill_9_mid_scrub_records_nothing_false_and_the_next_scrub_completes(tmp_path: Path, sqlite_url: str) -> None:
    """A power cut mid-scrub: no tape is marked verified that was not, and the next run does the work."""
    from pytp.tapeio.virtual_drive import loaded_tape
    from tests.crash.victim import Victim, catalog_held

    config = write_library_config(tmp_path / "site", sqlite_url, tapes=5, slots=7, block_size=BLOCK)
    src = make_tree(tmp_path / "src", big_file=8 << 20)
    tapes = [_backup(config, src)["tapes"][0], _backup(config, src, "--pool", "offsite")["tapes"][0]]
    drive = tmp_path / "site" / "lib" / "drives" / "0"
    database = tmp_path / "catalog.db"
    assert loaded_tape(drive) is None  # jobs put their tape back: the scrub's load is what we wait for
    # Held write lock: the scrub reads its tape but cannot record anything, so the kill lands before
    # any record however fast the machine is.
    with catalog_held(database):
        victim = Victim("--config", str(config), "scrub")
        deadline = time.monotonic() + 60
        while loaded_tape(drive) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert loaded_tape(drive) is not None, victim.stderr.decode(errors="replace")
        victim.signal(9)
        victim.finish()
    with Session(open_catalog(sqlite_url)) as session:
        volumes = session.exec(select(Volume).where(col(Volume.label).in_(tapes))).all()
        assert [(v.last_verified_at, v.last_verify_result, v.status) for v in volumes] == [
            (None, None, VolumeStatus.APPENDABLE)
        ] * 2
    # The next scrub takes the drive (the dead process's lock is gone) and the tape left in it.
    result = _scrub(config, sqlite_url)
    assert [(t.tape, t.result) for t in result.tapes] == [(tapes[0], "ok"), (tapes[1], "ok")]
