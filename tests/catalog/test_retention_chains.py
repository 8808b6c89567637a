"""Retention keeps what restores still need (issue 9 probe: two ways recycling lost data).

A full job must stay while an incremental of its chain that needs it is in
retention, and an offsite copy must stay restorable once its original tape is
recycled.  At pytp's default block size, on the embedded virtual library,
with time moved by ageing the jobs in the SQLite catalog.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import Job, Volume, VolumeStatus
from pytp.catalog.vault_report import job_copies
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config
from tests.crafted_tape import DEFAULT_BLOCK_SIZE

POOLS = [
    {"name": "default", "retention_days": 30, "barcodes": ["PYT001L9", "PYT002L9"]},
    {"name": "offsite", "retention_days": 365, "barcodes": ["PYT003L9"]},
]

#: two tapes onsite (30 days), two offsite (365 days)
TWO_AND_TWO = [
    {"name": "default", "retention_days": 30, "barcodes": ["PYT001L9", "PYT002L9"]},
    {"name": "offsite", "retention_days": 365, "barcodes": ["PYT003L9", "PYT004L9"]},
]


class Site:
    def __init__(self, tmp_path: Path, tapes: int = 3, pools: list[dict] = POOLS) -> None:
        self.url = f"sqlite:///{tmp_path / 'catalog.db'}"
        self.config = write_library_config(
            tmp_path / "site", self.url, tapes=tapes, block_size=DEFAULT_BLOCK_SIZE, pools=pools
        )
        self.tmp = tmp_path

    def run(self, *args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args])
        assert result.exit_code == expect, result.output
        assert "Traceback" not in result.output
        return result

    def tapes(self) -> dict[str, dict]:
        return {t["label"]: t for t in json.loads(self.run("tapes", "--format", "json").stdout) if t["label"]}

    def age(self, job_id: int, days: int) -> None:
        with Session(open_catalog(self.url)) as session:
            job = session.get(Job, job_id)
            assert job is not None and job.ended_at is not None
            job.started_at -= timedelta(days=days)
            job.ended_at -= timedelta(days=days)
            session.add(job)
            session.commit()

    def fill(self, *labels: str) -> None:
        """Mark tapes full, so that the next backup of their pool must recycle one."""
        with Session(open_catalog(self.url)) as session:
            for volume in session.exec(select(Volume).where(Volume.label.in_(labels))).all():  # type: ignore[attr-defined]
                volume.status = VolumeStatus.FULL
                session.add(volume)
            session.commit()


def _tree(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("a", "b"):
        (root / name).write_text(f"{name}\n")
    return root


def test_a_full_stays_in_retention_while_an_incremental_that_needs_it_does(tmp_path: Path) -> None:
    site = Site(tmp_path)
    src = _tree(tmp_path / "src")
    site.run("backup", str(src), "--job", "c")  # job 1, full, on PYT001L9
    site.run("tape", "retire", "PYT001L9")  # so that the incremental goes to the other tape
    (src / "c").write_text("c\n")
    site.run("backup", str(src), "--job", "c", "--incremental")  # job 2 on PYT002L9
    site.run("tape", "unretire", "PYT001L9")
    site.age(1, 40)  # the full's own retention (30 days) is over; the incremental's is not

    tapes = site.tapes()
    assert tapes["PYT001L9"]["status"] != "expired"
    assert tapes["PYT001L9"]["retention_end"] == tapes["PYT002L9"]["retention_end"]
    # Nothing may recycle it: the backup that needs a tape finds none rather than losing the chain.
    site.fill("PYT001L9", "PYT002L9")
    other = _tree(tmp_path / "other")
    refused = site.run("backup", str(other), "--job", "other", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "No appendable, blank or expired tape for pool 'default'" in refused.stderr
    target = tmp_path / "out"
    site.run("restore", str(target), "--as-of", "2", "--match", str(src))
    assert sorted(p.name for p in (target / str(src).lstrip("/")).iterdir()) == ["a", "b", "c"]

    site.age(2, 40)  # now the whole chain is out of retention

    assert site.tapes()["PYT001L9"]["status"] == "expired"
    assert "on tape PYT001L9" in site.run("backup", str(other), "--job", "other").stdout


def test_an_offsite_copy_stays_restorable_when_its_original_is_recycled(tmp_path: Path) -> None:
    site = Site(tmp_path)
    src = _tree(tmp_path / "src")
    site.run("backup", str(src), "--job", "kept")  # job 1 on PYT001L9 (30 days)
    site.run("copy", "--job", "1", "--pool", "offsite")  # its copy on PYT003L9 (365 days)
    site.run("label", "--barcode", "PYT002L9")
    site.fill("PYT001L9", "PYT002L9")
    site.age(1, 40)

    other = _tree(tmp_path / "other")
    assert "on tape PYT001L9" in site.run("backup", str(other), "--job", "other").stdout  # recycled

    tapes = site.tapes()
    assert tapes["PYT003L9"]["jobs"] == 1 and tapes["PYT003L9"]["status"] == "full"
    assert tapes["PYT003L9"]["retention_end"] is not None
    found = json.loads(site.run("search", str(src / "a"), "--format", "json").stdout)
    assert [(hit["job"], hit["tape"]) for hit in found] == [(1, "PYT003L9")]
    target = tmp_path / "out"
    site.run("restore", str(target), "--job", "1")
    assert (target / str(src).lstrip("/") / "b").read_text() == "b\n"
    assert "0 problem(s)" in site.run("verify", "--job", "1").stdout
    # The vault report counts the copy that took over as the job's one copy (it said "0 of 2").
    with Session(open_catalog(site.url)) as session:
        copies, holders = job_copies(session)[1]
        labels = {v.label for v in session.exec(select(Volume)).all() if v.id in holders}
    assert (copies, labels) == (1, {"PYT003L9"})
    (job,) = [j for j in json.loads(site.run("jobs", "--format", "json").stdout) if j["id"] == 1]
    assert job["tapes"] == ["PYT003L9"]  # not the recycled tape any more


def test_after_a_fire_the_offsite_copy_alone_rebuilds_the_catalog(tmp_path: Path) -> None:
    """The originals and the catalog are gone: `catalog rebuild --all` of the copy gives the jobs back."""
    site = Site(tmp_path)
    src = _tree(tmp_path / "src")
    site.run("backup", str(src), "--job", "kept")  # job 1 on PYT001L9
    site.run("copy", "--job", "1", "--pool", "offsite")  # its copy on PYT003L9
    original = tmp_path / "site" / "lib" / "tapes" / "PYT001L9"
    for tape_file in original.glob("file-*"):
        tape_file.unlink()  # burnt: it reads blank
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"catalog.db{suffix}").unlink(missing_ok=True)

    out = site.run("catalog", "rebuild", "--all").stdout

    assert "PYT003L9: a copy of tape PYT001L9, which no tape read and the catalog do not hold" in out
    assert "1 job(s) added" in out
    tapes = site.tapes()
    assert tapes["PYT003L9"]["jobs"] == 1 and tapes["PYT003L9"]["status"] == "full"
    target = tmp_path / "out"
    site.run("restore", str(target), "--match", str(src / "a"), "--host", "all")
    assert (target / str(src).lstrip("/") / "a").read_text() == "a\n"
    assert "0 problem(s)" in site.run("verify", "--job", "1").stdout


def test_the_longest_kept_copy_of_a_full_stays_while_an_incrementals_copy_needs_it(tmp_path: Path) -> None:
    """Both jobs copied offsite; the full's copy must last as long as the incremental's copy (issue 9 probe:
    it expired, was recycled, and `--as-of` of the incremental lost the full's files with exit 0)."""
    site = Site(tmp_path, tapes=4, pools=TWO_AND_TWO)
    src = _tree(tmp_path / "src")
    site.run("backup", str(src), "--job", "c")  # job 1 on PYT001L9
    site.run("tape", "retire", "PYT001L9")
    (src / "c").write_text("c\n")
    site.run("backup", str(src), "--job", "c", "--incremental")  # job 2 on PYT002L9
    site.run("tape", "unretire", "PYT001L9")
    site.run("copy", "--job", "1", "--pool", "offsite")  # PYT003L9
    site.run("copy", "--job", "2", "--pool", "offsite")  # PYT004L9
    site.age(1, 400)  # its copy's own 365 days are over
    site.age(2, 300)  # the incremental's copy has 65 days left
    assert site.tapes()["PYT001L9"]["status"] == "expired"  # the onsite originals go by their own 30 days
    site.fill("PYT001L9", "PYT002L9")
    other = _tree(tmp_path / "other")
    assert "on tape PYT001L9" in site.run("backup", str(other), "--job", "other").stdout  # the full's copy takes over

    tapes = site.tapes()

    assert tapes["PYT003L9"]["status"] != "expired"
    assert tapes["PYT003L9"]["retention_end"] == tapes["PYT004L9"]["retention_end"]
    target = tmp_path / "out"
    site.run("restore", str(target), "--as-of", "2", "--match", str(src))
    assert sorted(p.name for p in (target / str(src).lstrip("/")).iterdir()) == ["a", "b", "c"]


def test_two_copies_of_a_recycled_tape_rebuild_as_an_original_and_its_copy(tmp_path: Path) -> None:
    """After the original was recycled, `catalog rebuild --all` called the second copy forged and
    left it unprotected: `pytp label` then relabelled it without --force (issue 9 probe)."""
    site = Site(tmp_path, tapes=4, pools=TWO_AND_TWO)
    src = _tree(tmp_path / "src")
    site.run("backup", str(src), "--job", "kept")  # job 1 on PYT001L9
    site.run("copy", "--job", "1", "--pool", "offsite")  # PYT003L9
    site.run("copy", "--tape", "PYT003L9", "--pool", "offsite")  # PYT004L9, a copy of the copy
    site.run("label", "--barcode", "PYT002L9")
    site.fill("PYT001L9", "PYT002L9")
    site.age(1, 40)
    site.run("backup", str(_tree(tmp_path / "other")), "--job", "other")  # recycles PYT001L9
    for _ in range(2):  # into the catalog that has them, then after losing it
        out = site.run("catalog", "rebuild", "--all").stdout
        assert "forged" not in out
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"catalog.db{suffix}").unlink(missing_ok=True)
        out = site.run("catalog", "rebuild", "--all").stdout
        assert "forged" not in out and "problem" not in out
        # one of them is the original of job 1 now, the other its copy (which depends on the order read)
        assert "imported as the original of its jobs" in out and "recorded as a copy of PYT00" in out

    tapes = site.tapes()
    assert tapes["PYT003L9"]["jobs"] == 1 and tapes["PYT004L9"]["jobs"] == 1
    assert tapes["PYT004L9"]["retention_end"] is not None
    refused = site.run("label", "--barcode", "PYT004L9", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "holds data in retention" in refused.stderr


def test_a_scheduled_copy_leaves_out_jobs_whose_tapes_are_out_of_retention(tmp_path: Path) -> None:
    """`pytp copy --uncopied` spent offsite tapes on expired jobs first (issue 9 probe)."""
    site = Site(tmp_path)
    site.run("backup", str(_tree(tmp_path / "old")), "--job", "old")  # job 1
    site.age(1, 40)  # out of its 30 days
    site.run("tape", "retire", "PYT001L9")
    site.run("backup", str(_tree(tmp_path / "new")), "--job", "new")  # job 2, on PYT002L9, in retention
    site.run("tape", "unretire", "PYT001L9")

    out = site.run("copy", "--uncopied", "--pool", "offsite").stdout

    copied = json.loads(site.run("tapes", "PYT003L9", "--format", "json").stdout)[0]["job_list"]
    assert [job["id"] for job in copied] == [2], out
