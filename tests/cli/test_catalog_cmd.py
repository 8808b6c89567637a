"""The catalog commands (``cli/catalog_cmd.py``): search, verify, tapes,
jobs and inventory after a backup."""

from __future__ import annotations

import json
from pathlib import Path


def test_tour_backup_search_restore_verify_tapes_jobs(run, source_tree: Path, tmp_path: Path) -> None:
    run("backup", str(source_tree), "--job", "tour")
    found = json.loads(run("search", "notes.md", "--format", "json").stdout)
    assert found[0]["path"].endswith("deep/er/notes.md")
    assert {"path", "size", "mtime", "xxh3", "job", "tape", "tape_file", "offset"} <= set(found[0])
    out = tmp_path / "out"
    run("restore", str(out), "--match", "notes.md")
    assert (out / str(source_tree).lstrip("/") / "docs/deep/er/notes.md").read_text() == "# notes\n" * 100
    assert "0 problem(s)" in run("verify").stdout
    tapes = json.loads(run("tapes", "--format", "json").stdout)
    assert {"label", "barcode", "slot", "status", "pool", "jobs", "bytes_written", "capacity"} <= set(tapes[0])
    jobs = json.loads(run("jobs", "--format", "json").stdout)
    assert jobs[0]["name"] == "tour" and jobs[0]["status"] == "ok" and jobs[0]["tapes"] == [tapes[0]["label"]]
    assert "label,barcode" in run("inventory", "--format", "csv").stdout


def test_a_job_without_a_log_is_explained_by_what_the_job_row_tells() -> None:
    from pytp.cli.catalog_cmd import _why_no_log

    assert "rebuilt from its tapes" in _why_no_log({"message": "rebuilt from tape; 2 members lost", "status": "ok"})
    assert "still running" in _why_no_log({"message": None, "status": "running"})
    assert "ended before" in _why_no_log({"message": "interrupted: its process ended", "status": "failed"})
    assert "without job logs" in _why_no_log({"message": None, "status": "ok"})
