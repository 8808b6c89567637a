"""The systemd units in configs/systemd (issue 11, part 4): valid for systemd, and
their pytp command lines valid for pytp."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import click
import pytest

from pytp.cli.main import cli

UNITS = Path(__file__).resolve().parents[1] / "configs" / "systemd"
INSTALLED_AT = "/usr/local/bin/pytp"
#: commands of issue 11 the units already name, not in pytp yet (their units say so)


def _exec_start(service: Path) -> list[str]:
    line = next(line for line in service.read_text().splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_every_timer_has_its_service_and_install_section() -> None:
    timers = sorted(UNITS.glob("*.timer"))
    assert [t.stem for t in timers] == ["pytp-copy", "pytp-full", "pytp-incremental", "pytp-scrub"]
    for timer in timers:
        assert (UNITS / f"{timer.stem}.service").is_file()
        text = timer.read_text()
        assert "OnCalendar=" in text and "Persistent=true" in text and "WantedBy=timers.target" in text


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    # The pytp of the environment running the tests (the venv of `.ci/test`), on PATH or not.
    pytp = shutil.which("pytp", path=str(Path(sys.executable).parent)) or shutil.which("pytp")
    if analyze is None or pytp is None:
        message = "SKIPPED LOUDLY: systemd-analyze (systemd) or the installed pytp is missing; units not verified"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    # verify checks that ExecStart's program exists: point it at this machine's pytp.
    for unit in UNITS.glob("pytp-*.*"):
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, pytp))
    units = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # It does fail on a broken unit, so the pass above means something.
    (tmp_path / "pytp-broken.timer").write_text("[Timer]\nOnCalendar=Funday\n[Install]\nWantedBy=timers.target\n")
    broken = subprocess.run([analyze, "verify", str(tmp_path / "pytp-broken.timer")], capture_output=True, text=True)
    assert broken.returncode != 0


@pytest.mark.parametrize("service", sorted(p.name for p in UNITS.glob("*.service")))
def test_service_command_lines_parse(service: str) -> None:
    argv = _exec_start(UNITS / service)
    assert argv[0] == INSTALLED_AT
    # $PYTP_SOURCES and friends are split into words by systemd; stand in a path.
    args = ["/srv" if a.startswith("$") else a for a in argv[1:]]
    name, rest = args[0], args[1:]
    command = cli.commands.get(name)
    assert command is not None, f"{service} runs `pytp {name}`, which does not exist"
    assert "coming" not in (UNITS / service).read_text()
    with click.Context(cli) as parent:
        command.make_context(name, rest, parent=parent)  # raises on an unknown or malformed option
