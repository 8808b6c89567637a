"""The notification hook ``notify.command`` (issue 11, part 4): a real shell command
gets the job summary as JSON on stdin; its failure is a warning and never
changes the job's exit code.  Virtual library at 512 KiB blocks."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.catalog.notify import NotifyConfig, run_hook
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _site(tmp_path: Path, catalog_url: str, notify: dict | None, name: str = "site") -> Path:
    path = write_library_config(tmp_path / name, catalog_url, block_size=BLOCK)
    if notify is not None:
        data = json.loads(path.read_text())
        data["notify"] = notify
        path.write_text(json.dumps(data))
    return path


def _pytp(config: Path, *args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def _iso_with_zone(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def test_hook_gets_the_backup_summary_as_json_on_stdin(tmp_path: Path, catalog_url: str) -> None:
    got, env = tmp_path / "notify.json", tmp_path / "notify.env"
    command = f"cat > '{got}'; echo \"$PYTP_JOB_KIND $PYTP_JOB_STATUS $PYTP_JOB_ID $PYTP_EXIT_CODE\" > '{env}'"
    config = _site(tmp_path, catalog_url, {"command": command, "timeout_seconds": 30})
    src = make_tree(tmp_path / "src")
    out = _pytp(config, "backup", str(src), "--format", "json")
    summary = json.loads(got.read_text())
    assert summary == json.loads(out.stdout)  # --format json prints the same fields
    assert (summary["kind"], summary["status"], summary["exit_code"], summary["job_id"]) == ("backup", "ok", 0, 1)
    assert summary["files"] == 16 and summary["bytes"] > 2 << 20
    assert summary["tapes"] == ["PYT001L9"] and summary["level"] == "full"
    assert summary["tape_files"] == [{"tape": "PYT001L9", "file_number": 1, "source": str(src), "blocks": 5}]
    assert _iso_with_zone(summary["started_at"]) <= _iso_with_zone(summary["ended_at"])
    assert any("loaded PYT001L9 from slot" in move for move in summary["tape_moves"])
    assert summary["problems"] == [] and summary["error"] is None
    assert env.read_text().split() == ["backup", "ok", "1", "0"]
    # A restore and a verify notify too, with their own fields.
    _pytp(config, "restore", str(tmp_path / "out"), "--job", "1")
    restored = json.loads(got.read_text())
    assert (restored["kind"], restored["status"], restored["target"]) == ("restore", "ok", str(tmp_path / "out"))
    assert restored["files"] == summary["files"] and restored["verified"] > 0
    _pytp(config, "verify", "--job", "1")
    verified = json.loads(got.read_text())
    assert (verified["kind"], verified["status"], verified["jobs"]) == ("verify", "ok", [1])


def test_a_failed_job_is_notified_with_its_error_and_exit_code(tmp_path: Path, sqlite_url: str) -> None:
    got = tmp_path / "notify.json"
    config = _site(tmp_path, sqlite_url, {"command": f"cat > '{got}'"})
    r = _pytp(config, "backup", str(tmp_path / "missing"), "--drive", "nope", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Unknown drive 'nope'" in r.stderr
    summary = json.loads(got.read_text())
    assert (summary["status"], summary["exit_code"]) == ("failed", exitcodes.EXIT_CONFIG)
    assert summary["error"].startswith("Unknown drive 'nope'")


@pytest.mark.parametrize(
    ("command", "warning"),
    [
        ("cat >/dev/null; echo 'smtp refused' >&2; exit 3", "the notify command exited with 3: smtp refused"),
        ("exec /nonexistent/notifier", "the notify command exited with 127"),
        # The shell's child keeps stdin/stderr open: the whole process group is killed.
        ("sleep 300 & wait", "the notify command did not finish within 0.5 s and was killed"),
    ],
)
def test_a_failing_hook_is_a_warning_and_the_exit_code_stays(
    tmp_path: Path, sqlite_url: str, command: str, warning: str
) -> None:
    config = _site(tmp_path, sqlite_url, {"command": command, "timeout_seconds": 0.5})
    src = make_tree(tmp_path / "src")
    r = _pytp(config, "backup", str(src))
    assert "Job 1 ok" in r.stdout
    assert f"Warning: {warning}" in r.stderr


def test_no_hook_and_a_hook_that_does_not_read_stdin() -> None:
    assert run_hook(NotifyConfig(), {"kind": "backup"}) is None
    # Closing stdin early (EPIPE on our side) is not a failure of the hook.
    assert run_hook(NotifyConfig("exit 0"), {"kind": "backup", "notes": ["x" * (1 << 20)]}) is None


def test_notify_configuration_is_checked(tmp_path: Path, sqlite_url: str) -> None:
    config = _site(tmp_path, sqlite_url, {"comand": "mail root"})
    r = _pytp(config, "jobs", expect=exitcodes.EXIT_CONFIG)
    assert "unknown key 'notify.comand'; did you mean 'command'?" in r.stderr
    config = _site(tmp_path, sqlite_url, {"command": "true", "timeout_seconds": 0}, name="site2")
    r = _pytp(config, "jobs", expect=exitcodes.EXIT_CONFIG)
    assert "notify.timeout_seconds must be greater than 0" in r.stderr
