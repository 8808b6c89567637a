"""`pytp restore` (``cli/restore_cmd.py``): no overwrite unless asked, and
verify's failure code once the source has changed."""

from __future__ import annotations

from pathlib import Path

from pytp.tapeio import exitcodes


def test_restore_refuses_overwrite_and_verify_failure_codes(run, source_tree: Path, tmp_path: Path) -> None:
    run("backup", str(source_tree))
    out = tmp_path / "out"
    run("restore", str(out), "--match", "report.txt")
    r = run("restore", str(out), "--match", "report.txt", expect=exitcodes.EXIT_RESTORE_REFUSED)
    assert "Use --overwrite" in r.stderr
    run("restore", str(out), "--match", "report.txt", "--overwrite")
    (source_tree / "docs" / "report.txt").write_text("changed")
    r = run("verify", "--against-disk", str(source_tree), expect=exitcodes.EXIT_VERIFY_FAILED)
    assert "changed:" in r.stdout
