"""``pytp copy`` at the core: block-exact mirrors, continued, interrupted, too small; restores that read copies.

Real SQLite catalogs, the virtual library at the default 512 KiB blocks, GNU tar
reading the copy tape's files directly.  Tapes are sent away the way an operator
does it: out of the drive, into the mail slot, taken out, and recorded in a vault.
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from pytp.catalog.config import read_config
from pytp.catalog.copy import CopyOptions, run_copy
from pytp.catalog.copy_select import CopyRefused
from pytp.catalog.database import open_catalog
from pytp.catalog.errors import ConfigError, TapeFull
from pytp.catalog.models import Entry, TapeFile, TapeFileStatus, Volume, VolumeStatus
from pytp.tapeio.changer import DriveElement
from pytp.tapeio.errors import MediumError
from pytp.tapeio.virtual_changer import VirtualChanger, take_out
from pytp.tapeio.virtual_tape import configure_tape
from tests.cli.runner import invoke
from tests.conftest import small_filesystem, write_library_config

BLOCK = 512 << 10  # the default configuration's block size
SLOTS = 6


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(
        tmp_path / "site", sqlite_url, tapes=5, slots=SLOTS, block_size=BLOCK, tape_size=256 << 20
    )


def _library(config: Path) -> Path:
    return config.parent / "lib"


def _tape_dir(config: Path, barcode: str) -> Path:
    return _library(config) / "tapes" / barcode


def _tree(root: Path, name: str, size: int = 3 << 20) -> Path:
    root.mkdir(parents=True)
    (root / f"{name}.bin").write_bytes(os.urandom(size))
    (root / f"{name}.txt").write_text(f"{name}\n" * 500)
    return root


def _backup(config: Path, source: Path) -> int:
    out = invoke(config, "backup", str(source), "--pool", "default", "-d", "d0", "--format", "json").stdout
    return int(json.loads(out)["job_id"])


def _session(config: Path) -> Session:
    return Session(open_catalog(read_config(config, "--config").catalog_url), expire_on_commit=False)


def _volume(config: Path, label: str) -> Volume:
    with _session(config) as session:
        return session.exec(select(Volume).where(Volume.label == label)).one()


def send_away(config: Path, barcode: str, vault: str) -> None:
    """What `pytp vault export` does, by hand: the cartridge leaves the library, the catalog says where to."""
    changer = VirtualChanger(_library(config))
    place = changer.status().find_barcode(barcode)
    if isinstance(place, DriveElement):
        changer.unload(None, place.index)
        place = changer.status().find_barcode(barcode)
    mail = SLOTS + 1
    changer.transfer(place.number, mail)  # type: ignore[union-attr]
    take_out(_library(config), mail)
    with _session(config) as session:
        volume = session.exec(select(Volume).where(Volume.barcode == barcode)).one()
        volume.vault = vault
        session.add(volume)
        session.commit()


def _copy(config: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    conf = read_config(config, "--config")
    return run_copy(open_catalog(conf.catalog_url), conf, CopyOptions(**kwargs))  # type: ignore[arg-type]


def test_two_drive_copy_mirrors_the_source_block_for_block_and_a_restore_reads_it(site: Path, tmp_path: Path) -> None:
    first = _backup(site, _tree(tmp_path / "a", "alpha"))
    second = _backup(site, _tree(tmp_path / "b", "beta"))
    result = _copy(site, pool="offsite", job_ids=[second])
    assert result.mode == "two drives"
    [tape] = result.tapes
    assert tape.source == "PYT001L9" and tape.new_tape
    # job 2's data and manifest are files 3 and 4; job 1's files 1 and 2 come along to keep the numbering
    assert tape.files == [1, 2, 3, 4] and tape.other_jobs == [first]
    assert any(f"other job(s) {first}" in note for note in result.notes)

    source, copy = _tape_dir(site, "PYT001L9"), _tape_dir(site, tape.copy_barcode or "")
    for number in range(1, 5):
        assert filecmp.cmp(source / f"file-{number:05d}", copy / f"file-{number:05d}", shallow=False)
    assert not filecmp.cmp(source / "file-00000", copy / "file-00000", shallow=False)  # its own label
    # GNU tar reads the copy's tape file without pytp
    listing = subprocess.run(
        ["tar", "-b", str(BLOCK // 512), "-tf", str(copy / "file-00003")], capture_output=True, text=True, check=True
    ).stdout
    assert "beta.bin" in listing

    with _session(site) as session:
        original = session.exec(select(Volume).where(Volume.label == "PYT001L9")).one()
        mirror = session.exec(select(Volume).where(Volume.label == tape.copy)).one()
        assert mirror.copy_of_id == original.id and mirror.pool == "offsite" and mirror.file_count == 5
        assert mirror.last_verify_result == "ok"
        rows = session.exec(select(TapeFile).where(TapeFile.volume_id == mirror.id)).all()
        sources = {t.id: t for t in session.exec(select(TapeFile).where(TapeFile.volume_id == original.id)).all()}
        assert len(rows) == 4  # one row per tape file, not per file
        for row in rows:
            src = sources[row.copy_of_id]  # type: ignore[index]
            assert (row.file_number, row.blocks, row.block_size, row.status) == (
                src.file_number,
                src.blocks,
                src.block_size,
                TapeFileStatus.COMPLETE,
            )
            assert row.job_id is None
        # entries stay on the original's rows
        assert not session.exec(select(Entry).where(col(Entry.tape_file_id).in_([r.id for r in rows]))).first()

    # `pytp tapes` counts on the copy the jobs and files of the tape files it mirrors
    listed = {t["label"]: t for t in json.loads(invoke(site, "tapes", "--format", "json").stdout)}
    assert (listed[tape.copy]["jobs"], listed[tape.copy]["files"]) == (2, listed["PYT001L9"]["files"])
    assert listed["PYT001L9"]["jobs"] == 2 and listed["PYT001L9"]["files"] > 0

    send_away(site, "PYT001L9", "offsite-A")
    plan = invoke(site, "restore", str(tmp_path / "out"), "--match", "beta.bin", "--plan", "-d", "d0").stdout
    assert f"tape {tape.copy} (barcode {tape.copy_barcode}" in plan and "copy of PYT001L9" in plan
    out = invoke(site, "restore", str(tmp_path / "out"), "--match", "beta.bin", "-d", "d0").stdout
    assert f"from tape {tape.copy}" in out
    restored = tmp_path / "out" / str(tmp_path / "b" / "beta.bin").lstrip("/")
    assert restored.read_bytes() == (tmp_path / "b" / "beta.bin").read_bytes()


def test_one_drive_copy_stages_and_leaves_nothing_behind(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    result = _copy(site, pool="offsite", job_ids=[job], drive_from="d0", drive_to="d0")
    assert result.mode == "staging" and result.tapes[0].files == [1, 2]
    tars = site.parent / "tars"
    assert not list(tars.iterdir())  # staged tape files removed
    copy = _tape_dir(site, result.tapes[0].copy_barcode or "")
    assert filecmp.cmp(_tape_dir(site, "PYT001L9") / "file-00001", copy / "file-00001", shallow=False)


def test_a_later_copy_continues_the_same_copy_tape(site: Path, tmp_path: Path) -> None:
    first = _backup(site, _tree(tmp_path / "a", "alpha"))
    one = _copy(site, pool="offsite", job_ids=[first]).tapes[0]
    second = _backup(site, _tree(tmp_path / "b", "beta"))
    two = _copy(site, pool="offsite", job_ids=[second]).tapes[0]
    assert (two.copy, two.already, two.files, two.new_tape) == (one.copy, 2, [3, 4], False)
    again = _copy(site, pool="offsite", tapes=["PYT001L9"]).tapes[0]
    assert again.files == [] and again.already == 4


def test_a_write_error_leaves_no_complete_row_and_the_next_copy_writes_that_file_again(
    site: Path, tmp_path: Path
) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    blank = "PYT002L9"  # the next blank: the copy tape
    configure_tape(_tape_dir(site, blank), write_errors=[(2, 0)])  # the manifest's first block
    with pytest.raises(MediumError):
        _copy(site, pool="offsite", job_ids=[job])
    with _session(site) as session:
        copy = session.exec(select(Volume).where(Volume.barcode == blank)).one()
        rows = {r.file_number: r.status for r in session.exec(select(TapeFile).where(TapeFile.volume_id == copy.id))}
    assert rows == {1: TapeFileStatus.COMPLETE, 2: TapeFileStatus.INCOMPLETE}
    configure_tape(_tape_dir(site, blank), write_errors=[])
    again = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    assert (again.copy_barcode, again.already, again.files) == (blank, 1, [2])
    assert filecmp.cmp(_tape_dir(site, "PYT001L9") / "file-00002", _tape_dir(site, blank) / "file-00002", shallow=False)


def test_a_copy_tape_smaller_than_the_source_fails_cleanly_copies_do_not_span(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha", size=8 << 20))
    small = "PYT002L9"
    configure_tape(_tape_dir(site, small), end_of_medium_at=4 << 20)  # label fits, the data file does not
    with pytest.raises(TapeFull, match="copies do not span"):
        _copy(site, pool="offsite", job_ids=[job])
    volume = _volume(site, small)
    assert volume.status == VolumeStatus.FULL
    with _session(site) as session:
        statuses = session.exec(select(TapeFile.status).where(TapeFile.volume_id == volume.id)).all()
    assert TapeFileStatus.COMPLETE not in statuses
    # the next copy starts a new copy tape instead of continuing the full one
    again = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    assert again.copy_barcode != small and again.new_tape and again.files == [1, 2]


def test_restore_when_every_copy_is_away_says_what_to_fetch_from_where(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    copy = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    send_away(site, "PYT001L9", "bank")
    send_away(site, copy.copy_barcode or "", "offsite-A")
    plan = invoke(site, "restore", str(tmp_path / "out"), "--match", "alpha.txt", "--plan", "-d", "d0").stdout
    assert "PYT001L9 (original, barcode PYT001L9) is in vault 'bank'" in plan
    assert f"copy {copy.copy} (barcode {copy.copy_barcode}) is in vault 'offsite-A'" in plan
    r = invoke(site, "restore", str(tmp_path / "out"), "--match", "alpha.txt", "-d", "d0", expect=8)
    assert "vault 'offsite-A'" in r.stderr and "vault 'bank'" in r.stderr


def test_refusals(site: Path, tmp_path: Path) -> None:
    from pytp.catalog.errors import NotFound

    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    with pytest.raises(NotFound, match="No job 99"):
        _copy(site, pool="offsite", job_ids=[99])
    with pytest.raises(CopyRefused, match="in pool 'default' already"):
        _copy(site, pool="default", job_ids=[job])
    copy = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    with pytest.raises(CopyRefused, match="PYT001L9 is in pool 'default' already"):
        _copy(site, pool="default", tapes=[copy.copy])  # a copy of a copy: its original's pool counts
    # A backup never appends to a copy tape, even to the copy pool
    other = _tree(tmp_path / "c", "gamma")
    invoke(site, "backup", str(other), "--pool", "offsite", "-d", "d1")
    with _session(site) as session:
        mirror = session.exec(select(Volume).where(Volume.label == copy.copy)).one()
        assert mirror.file_count == 3
        assert not session.exec(
            select(TapeFile).where(TapeFile.volume_id == mirror.id, col(TapeFile.job_id).is_not(None))
        ).first()


def test_a_failed_jobs_tape_file_in_the_middle_is_mirrored_as_it_is(site: Path, tmp_path: Path) -> None:
    """A failed job must not keep the jobs after it from ever being copied (a weekly copy would stall)."""
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    later = _backup(site, _tree(tmp_path / "b", "beta"))
    with _session(site) as session:  # as if job 1's manifest had been cut short
        row = session.exec(select(TapeFile).where(TapeFile.job_id == job, TapeFile.kind == "manifest")).one()
        row.status = TapeFileStatus.INCOMPLETE
        row.blocks = 0  # a cut file's recorded count may be short: the blocks on tape are copied
        session.add(row)
        session.commit()
        cut_id = row.id
    _copy(site, pool="offsite", job_ids=[later])
    with _session(site) as session:
        mirror = session.exec(select(Volume).where(col(Volume.copy_of_id).is_not(None))).one()
        rows = session.exec(select(TapeFile).where(TapeFile.volume_id == mirror.id)).all()
        by_number = {r.file_number: r for r in rows if r.status == TapeFileStatus.COMPLETE}
        assert sorted(by_number) == [1, 2, 3, 4]
        assert by_number[2].copy_of_id == cut_id and by_number[2].blocks > 0


def test_a_new_copy_made_from_a_copy_mirrors_the_original_and_restores_when_both_are_away(
    site: Path, tmp_path: Path
) -> None:
    """After the original failed a scrub, `pytp copy --tape COPY` makes a second good copy from the first."""
    source = _tree(tmp_path / "a", "alpha")
    job = _backup(site, source)
    first = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    second = _copy(site, pool="offsite", tapes=[first.copy]).tapes[0]
    assert second.copy not in (first.copy, "PYT001L9") and second.new_tape
    assert second.source == "PYT001L9"
    with _session(site) as session:
        original = session.exec(select(Volume).where(Volume.label == "PYT001L9")).one()
        made = session.exec(select(Volume).where(Volume.label == second.copy)).one()
        assert made.copy_of_id == original.id  # mirrors the original, not the copy it was read from
        sources = {r.copy_of_id for r in session.exec(select(TapeFile).where(TapeFile.volume_id == made.id)).all()}
        originals = {r.id for r in session.exec(select(TapeFile).where(TapeFile.volume_id == original.id)).all()}
        assert sources == originals
    send_away(site, "PYT001L9", "bank")
    send_away(site, first.copy_barcode or "", "offsite-A")
    out = tmp_path / "out"
    invoke(site, "restore", str(out), "--job", str(job), "-d", "d0")
    restored = out / source.relative_to("/")
    assert filecmp.cmp(restored / "alpha.bin", source / "alpha.bin", shallow=False)


def test_a_copy_that_lacks_a_tape_file_is_not_read_for_a_new_copy(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    first = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    with _session(site) as session:
        made = session.exec(select(Volume).where(Volume.label == first.copy)).one()
        row = session.exec(select(TapeFile).where(TapeFile.volume_id == made.id, TapeFile.file_number == 1)).one()
        row.status = TapeFileStatus.INCOMPLETE
        session.add(row)
        session.commit()
    with pytest.raises(CopyRefused, match=r"does not hold tape file\(s\) 1 "):
        _copy(site, pool="offsite", tapes=[first.copy])


def test_a_tape_file_still_being_written_stops_the_copy_of_that_tape(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    later = _backup(site, _tree(tmp_path / "b", "beta"))
    with _session(site) as session:  # as if job 1 were still running (or died and was not reconciled)
        row = session.exec(select(TapeFile).where(TapeFile.job_id == job, TapeFile.kind == "manifest")).one()
        row.status = TapeFileStatus.WRITING
        session.add(row)
        session.commit()
    with pytest.raises(CopyRefused, match="tape file 2 is not known to be on the tape"):
        _copy(site, pool="offsite", job_ids=[later])
    with _session(site) as session:
        assert not session.exec(select(Volume).where(col(Volume.copy_of_id).is_not(None))).first()


def test_kill_9_during_a_copy_leaves_no_complete_row_and_the_next_copy_finishes(site: Path, tmp_path: Path) -> None:
    from tests.crash.victim import Victim, catalog_held, wait_for_size

    job = _backup(site, _tree(tmp_path / "a", "alpha", size=48 << 20))
    with _session(site) as session:
        data = session.exec(select(TapeFile).where(TapeFile.job_id == job, TapeFile.kind == "data")).one()
    database = tmp_path / "catalog.db"
    victim = Victim("--config", str(site), "copy", "--job", str(job), "--pool", "offsite")
    copy_file = _tape_dir(site, "PYT002L9") / "file-00001"
    started = wait_for_size(copy_file, BLOCK)
    # The tape file is being written: stop the copy at once (48 MiB take far longer to write and read
    # back than one poll), hold the catalog so it cannot record the file complete, let the whole file
    # reach the tape, then kill: the worst moment, data on tape and the row still 'writing'.
    victim.signal(signal.SIGSTOP)
    with catalog_held(database):
        victim.signal(signal.SIGCONT)
        whole = wait_for_size(copy_file, data.total_bytes)
        victim.signal(9)
        victim.finish()
    assert started and whole, victim.stderr.decode(errors="replace")
    with _session(site) as session:
        copy = session.exec(select(Volume).where(Volume.barcode == "PYT002L9")).one()
        rows = {r.file_number: r.status for r in session.exec(select(TapeFile).where(TapeFile.volume_id == copy.id))}
    # The kill lands in tape file 1 or, when the copy got that far before the catalog was held, in
    # file 2: either way the file being written is 'writing', never 'complete' without its check,
    # and what is 'complete' is the source's tape file byte for byte.
    last = max(rows)
    assert rows[last] == TapeFileStatus.WRITING
    done = [n for n in rows if n != last]
    assert all(rows[n] == TapeFileStatus.COMPLETE for n in done) and last in (1, 2)
    for number in done:
        assert filecmp.cmp(
            _tape_dir(site, "PYT001L9") / f"file-{number:05d}",
            _tape_dir(site, "PYT002L9") / f"file-{number:05d}",
            shallow=False,
        )
    result = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    assert (result.copy_barcode, result.already, result.files) == ("PYT002L9", last - 1, list(range(last, 3)))
    for number in (1, 2):
        assert filecmp.cmp(
            _tape_dir(site, "PYT001L9") / f"file-{number:05d}",
            _tape_dir(site, "PYT002L9") / f"file-{number:05d}",
            shallow=False,
        )
    assert sorted(p.name for p in _tape_dir(site, "PYT002L9").glob("file-*")) == [f"file-{n:05d}" for n in range(3)]


def test_catalog_rebuild_records_a_copy_tape_as_a_copy_and_refuses_it_without_its_source(
    site: Path, tmp_path: Path
) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    copy = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    # A second catalog over the same library: as after losing the first one.
    fresh = json.loads(site.read_text())
    fresh["catalog"]["url"] = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    other = site.parent / "fresh.json"
    other.write_text(json.dumps(fresh))

    r = invoke(other, "catalog", "rebuild", "--tape", copy.copy_barcode or "", "-d", "d0", expect=10)
    assert "copy of tape PYT001L9, which is not in the catalog: rebuild from PYT001L9 first" in r.output
    with _session(other) as session:
        assert session.exec(select(Volume)).all() == []  # nothing imported as an original

    invoke(other, "catalog", "rebuild", "--tape", "PYT001L9", "-d", "d0")
    invoke(other, "catalog", "rebuild", "--tape", copy.copy_barcode or "", "-d", "d0")
    with _session(other) as session:
        original = session.exec(select(Volume).where(Volume.label == "PYT001L9")).one()
        mirror = session.exec(select(Volume).where(Volume.label == copy.copy)).one()
        assert mirror.copy_of_id == original.id and mirror.file_count == 3
        rows = session.exec(select(TapeFile).where(TapeFile.volume_id == mirror.id)).all()
        assert sorted((r.file_number, r.status, r.job_id) for r in rows) == [
            (1, TapeFileStatus.COMPLETE, None),
            (2, TapeFileStatus.COMPLETE, None),
        ]
        entries = session.exec(select(Entry).where(col(Entry.tape_file_id).in_([r.id for r in rows]))).all()
        assert entries == []
    # the rebuilt catalog restores from the copy once the original is away
    send_away(other, "PYT001L9", "bank")
    out = invoke(other, "restore", str(tmp_path / "out"), "--match", "alpha.bin", "--host", "all", "-d", "d0").stdout
    assert f"from tape {copy.copy}" in out


def test_a_job_spanning_two_tapes_gets_two_copies_and_restores_from_them(tmp_path: Path, sqlite_url: str) -> None:
    site = write_library_config(
        tmp_path / "site", sqlite_url, tapes=5, slots=SLOTS, block_size=BLOCK, tape_size=16 << 20
    )
    job = _backup(site, _tree(tmp_path / "a", "alpha", size=20 << 20))
    result = _copy(site, pool="offsite", job_ids=[job])
    assert [t.source for t in result.tapes] == ["PYT001L9", "PYT002L9"]
    copies = {t.source: t.copy for t in result.tapes}
    assert len(set(copies.values())) == 2
    send_away(site, "PYT001L9", "bank")
    send_away(site, "PYT002L9", "bank")
    plan = invoke(site, "restore", str(tmp_path / "out"), "--job", str(job), "--plan", "-d", "d0").stdout
    assert "copy of PYT001L9" in plan and "copy of PYT002L9" in plan and "missing" not in plan
    invoke(site, "restore", str(tmp_path / "out"), "--job", str(job), "-d", "d0")
    restored = tmp_path / "out" / str(tmp_path / "a" / "alpha.bin").lstrip("/")
    assert restored.read_bytes() == (tmp_path / "a" / "alpha.bin").read_bytes()  # cut across the two copies


def test_verify_reads_the_copy_when_the_original_is_away(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    copy = _copy(site, pool="offsite", job_ids=[job]).tapes[0]
    send_away(site, "PYT001L9", "bank")
    out = invoke(site, "verify", "--job", str(job), "-d", "d0", "--format", "json").stdout
    data = json.loads(out)
    assert data["status"] == "ok" and data["tapes"] == [copy.copy] and data["checked"] > 0
    assert _volume(site, "PYT001L9").last_verified_at is None  # the original was not read
    # damage on the copy is found: the copy is what was read
    configure_tape(_tape_dir(site, copy.copy_barcode or ""), read_errors=[(1, 0)])
    invoke(site, "verify", "--job", str(job), "-d", "d0", expect=10)


def test_staging_is_removed_when_the_copy_fails_part_way(site: Path, tmp_path: Path) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    configure_tape(_tape_dir(site, "PYT002L9"), write_errors=[(2, 0)])
    with pytest.raises(MediumError):
        _copy(site, pool="offsite", job_ids=[job], drive_from="d0", drive_to="d0")
    assert not list((site.parent / "tars").iterdir())  # nothing staged is left behind


def test_staging_on_a_disk_too_small_for_a_tape_file_refuses_before_writing_anything(
    site: Path, tmp_path: Path
) -> None:
    job = _backup(site, _tree(tmp_path / "a", "alpha", size=12 << 20))
    tapes_before = sorted(p.name for p in (_library(site) / "tapes").iterdir() if (p / "file-00000").exists())
    # a real file system with 8 MiB free beyond the 64 MiB staging reserve: the 12 MiB tape file cannot fit
    with small_filesystem(site.parent / "tars", "72m"):
        with pytest.raises(ConfigError, match=r"Staging tape file 1 needs .* nothing was written"):
            _copy(site, pool="offsite", job_ids=[job], drive_from="d0", drive_to="d0")
        assert not list((site.parent / "tars").iterdir())
    labelled = sorted(p.name for p in (_library(site) / "tapes").iterdir() if (p / "file-00000").exists())
    assert labelled == tapes_before  # no copy tape was labelled
    with _session(site) as session:
        assert session.exec(select(Volume).where(col(Volume.copy_of_id).is_not(None))).all() == []
        assert session.exec(select(TapeFile).where(col(TapeFile.copy_of_id).is_not(None))).all() == []


def test_a_source_sitting_in_the_writing_drive_is_moved_to_the_reading_one(site: Path, tmp_path: Path) -> None:
    source = _tree(tmp_path / "a", "alpha")
    invoke(site, "backup", str(source), "-d", "d1", "--keep-loaded")
    result = _copy(site, pool="offsite", tapes=["PYT001L9"], drive_from="d0", drive_to="d1")
    assert result.mode == "two drives" and result.tapes[0].files == [1, 2]
    assert filecmp.cmp(
        _tape_dir(site, "PYT001L9") / "file-00001", _tape_dir(site, "PYT002L9") / "file-00001", shallow=False
    )


def test_tapes_counts_a_copy_only_once_it_is_whole(site: Path, tmp_path: Path) -> None:
    """A copy stopped part-way counted the source's files as if on the copy tape, and
    again for the row of the copy run after it (14 files for 7)."""
    job = _backup(site, _tree(tmp_path / "a", "alpha"))
    blank = "PYT002L9"
    configure_tape(_tape_dir(site, blank), write_errors=[(1, 3)])  # inside the first data file
    with pytest.raises(MediumError):
        _copy(site, pool="offsite", job_ids=[job])

    def counts() -> dict[str, tuple[int, int]]:
        rows = json.loads(invoke(site, "tapes", "--format", "json").stdout)
        return {t["label"]: (t["jobs"], t["files"]) for t in rows if t["barcode"] in ("PYT001L9", blank)}

    source = counts()["PYT001L9"]
    assert source[1] > 0 and counts()[_volume(site, blank).label] == (0, 0)
    configure_tape(_tape_dir(site, blank), write_errors=[])
    _copy(site, pool="offsite", job_ids=[job])
    assert counts()[_volume(site, blank).label] == source
    # `pytp tapes COPY` names the jobs it holds, as its row counts them.
    (detail,) = json.loads(invoke(site, "tapes", _volume(site, blank).label, "--format", "json").stdout)
    assert [j["id"] for j in detail["job_list"]] == [job]
    assert {f["job"] for f in detail["tape_file_list"] if f["kind"] == "data"} == {job}
