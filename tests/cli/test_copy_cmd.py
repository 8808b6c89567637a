"""`pytp copy` from the command line: its report, --format json|csv, the job log, and its errors' exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from pytp.tapeio import exitcodes
from tests.cli.runner import invoke
from tests.conftest import write_library_config

BLOCK = 512 << 10


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_library_config(tmp_path / "site", sqlite_url, tapes=4, block_size=BLOCK, tape_size=128 << 20)


def _backup(site: Path, root: Path, name: str) -> int:
    root.mkdir()
    (root / f"{name}.bin").write_bytes(os.urandom(1 << 20))
    out = invoke(site, "backup", str(root), "-d", "d0", "--format", "json").stdout
    return int(json.loads(out)["job_id"])


def test_copy_reports_for_people_and_as_data_and_logs_into_the_copied_jobs(site: Path, tmp_path: Path) -> None:
    first = _backup(site, tmp_path / "a", "alpha")
    second = _backup(site, tmp_path / "b", "beta")
    out = invoke(site, "copy", "--job", str(second), "--pool", "offsite").stdout
    assert f"other job(s) {first} are copied too" in out
    assert "PYT001L9" in out and "PYT002L9 (new)" in out and "1-4" in out
    assert "Copied 4 tape file(s)" in out and "two drives: d0, d1" in out

    # Nothing left to copy: the summary says so, as data
    data = json.loads(invoke(site, "copy", "--tape", "PYT001L9", "--pool", "offsite", "--format", "json").stdout)
    assert data["kind"] == "copy" and data["status"] == "ok" and data["exit_code"] == 0
    assert data["copies"] == [
        {
            "source": "PYT001L9",
            "copy": "PYT002L9",
            "copy_barcode": "PYT002L9",
            "new_tape": False,
            "held_before": 4,
            "tape_files": "",
            "bytes": 0,
            "jobs": "",
            "other_jobs": "",
        }
    ]
    third = _backup(site, tmp_path / "c", "gamma")
    rows = list(
        csv.DictReader(
            io.StringIO(invoke(site, "copy", "--job", str(third), "--pool", "offsite", "--format", "csv").stdout)
        )
    )
    assert rows[0]["kind"] == "copy" and rows[0]["tapes"] == "PYT002L9" and rows[0]["files"] == "2"
    log = json.loads(invoke(site, "jobs", str(second), "--format", "json").stdout)
    assert "copy ok" in json.dumps(log)


def test_copy_errors_have_their_exit_codes(site: Path, tmp_path: Path) -> None:
    job = _backup(site, tmp_path / "a", "alpha")
    r = invoke(site, "copy", "--pool", "offsite", expect=exitcodes.EXIT_USAGE)
    assert "Say what to copy: --job ID, --tape LABEL or --uncopied." in r.output
    r = invoke(site, "copy", "--since", "7d", "--pool", "offsite", expect=exitcodes.EXIT_USAGE)
    assert "--since goes with --uncopied" in r.output
    r = invoke(site, "copy", "--uncopied", "--since", "7", "--pool", "offsite", expect=exitcodes.EXIT_USAGE)
    assert "not a duration" in r.output
    r = invoke(site, "copy", "--job", "77", "--pool", "offsite", expect=exitcodes.EXIT_NOT_FOUND)
    assert "Error: No job 77 in the catalog" in r.stderr
    r = invoke(site, "copy", "--job", str(job), "--pool", "nosuch", expect=exitcodes.EXIT_CONFIG)
    assert "Error:" in r.stderr and "nosuch" in r.stderr
    r = invoke(site, "copy", "--tape", "NOPE", "--pool", "offsite", expect=exitcodes.EXIT_NOT_FOUND)
    assert "No tape labelled 'NOPE'" in r.stderr
    r = invoke(site, "copy", "--job", str(job), "--pool", "default", expect=exitcodes.EXIT_ERROR)
    assert "in pool 'default' already" in r.stderr


def test_copy_without_a_blank_tape_for_the_pool_says_so(tmp_path: Path, sqlite_url: str) -> None:
    pools = [{"name": "default"}, {"name": "offsite", "label_prefix": "OFF"}]  # no cartridge is OFF…
    site = write_library_config(tmp_path / "site", sqlite_url, tapes=3, block_size=BLOCK, pools=pools)
    job = _backup(site, tmp_path / "a", "alpha")
    r = invoke(site, "copy", "--job", str(job), "--pool", "offsite", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "No blank tape for pool 'offsite'" in r.stderr


def test_copy_help_has_an_example() -> None:
    from click.testing import CliRunner

    from pytp.cli.main import cli

    out = CliRunner().invoke(cli, ["copy", "--help"]).output
    assert "Examples:" in out and "pytp copy --job 12 --pool offsite" in out
    assert "copy" in CliRunner().invoke(cli, ["--help"]).output


def test_copy_progress_is_drawn_when_asked_and_not_on_a_pipe(site: Path, tmp_path: Path) -> None:
    job = _backup(site, tmp_path / "a", "alpha")
    quiet = invoke(site, "copy", "--job", str(job), "--pool", "offsite")
    assert "copy PYT001L9" not in quiet.stderr  # CliRunner's stderr is not a terminal
    second = _backup(site, tmp_path / "b", "beta")
    shown = invoke(site, "copy", "--job", str(second), "--pool", "offsite", "--progress")
    assert "PYT001L9 file 3 -> PYT002L9" in shown.stderr


def test_copy_returns_its_tapes_to_their_slots_unless_keep_loaded(site: Path, tmp_path: Path) -> None:
    from pytp.tapeio.virtual_changer import VirtualChanger

    changer = VirtualChanger(site.parent / "lib")
    job = _backup(site, tmp_path / "a", "alpha")
    invoke(site, "copy", "--job", str(job), "--pool", "offsite")
    assert not any(d.full for d in changer.status().drives)
    later = _backup(site, tmp_path / "b", "beta")
    invoke(site, "copy", "--job", str(later), "--pool", "offsite", "--keep-loaded")
    assert sorted(d.barcode for d in changer.status().drives if d.full) == ["PYT001L9", "PYT002L9"]


def test_tapes_names_the_original_of_a_copy_tape(site: Path, tmp_path: Path) -> None:
    job = _backup(site, tmp_path / "a", "alpha")
    invoke(site, "copy", "--job", str(job), "--pool", "offsite")
    tapes = {t["label"]: t for t in json.loads(invoke(site, "tapes", "--format", "json").stdout) if t["label"]}
    assert tapes["PYT002L9"]["note"] == "copy of PYT001L9" and tapes["PYT002L9"]["pool"] == "offsite"
    assert tapes["PYT001L9"]["note"] is None


def test_a_copy_tape_is_kept_as_long_as_the_jobs_it_copies(site: Path, tmp_path: Path) -> None:
    job = _backup(site, tmp_path / "a", "alpha")
    invoke(site, "copy", "--job", str(job), "--pool", "offsite")
    r = invoke(site, "label", "--barcode", "PYT002L9", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "holds data in retention" in r.stderr
    tapes = {t["label"]: t for t in json.loads(invoke(site, "tapes", "--format", "json").stdout) if t["label"]}
    assert tapes["PYT002L9"]["retention_end"] is not None  # offsite's 365 days from the job's end


def test_uncopied_copies_what_has_no_copy_yet_and_then_nothing(site: Path, tmp_path: Path) -> None:
    """The weekly copy (configs/systemd/pytp-copy.service): run it twice, the second run has nothing to do."""
    first = _backup(site, tmp_path / "a", "alpha")
    invoke(site, "copy", "--job", str(first), "--pool", "offsite")
    second = _backup(site, tmp_path / "b", "beta")
    data = json.loads(
        invoke(site, "copy", "--uncopied", "--since", "7d", "--pool", "offsite", "--format", "json").stdout
    )
    assert data["status"] == "ok" and data["files"] == 2  # only the second job's data and manifest
    assert [c["jobs"] for c in data["copies"]] == [str(second)]
    out = invoke(site, "copy", "--uncopied", "--pool", "offsite").stdout
    assert "Nothing to copy now: every good job in reach has a copy in pool 'offsite'." in out


def test_uncopied_skips_a_job_whose_tape_is_in_a_vault_with_a_note(site: Path, tmp_path: Path) -> None:
    job = _backup(site, tmp_path / "a", "alpha")
    invoke(site, "vault", "export", "PYT001L9", "--to", "bank")
    r = invoke(site, "copy", "--uncopied", "--pool", "offsite")
    assert f"Note: job {job} is not copied now: PYT001L9 (vault bank) is away" in r.stdout
    assert "Nothing to copy now" in r.stdout
