"""Configurable timeouts: the wait for a drive to be ready after a load, and mtx's limit (issue 11, part 2).

The virtual drive's ``not_ready_for`` fault makes it report "not ready" for a
while after each load, as a real drive does while it threads and calibrates a
cartridge; pytp waits for it up to ``timeouts.drive_ready_seconds``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytp.catalog.config import LibraryConfig, TimeoutsConfig, read_config
from pytp.catalog.devices import open_changer
from pytp.catalog.errors import ConfigError
from pytp.tapeio.errors import DriveNotReady, NoMedium
from pytp.tapeio.exitcodes import EXIT_DRIVE
from pytp.tapeio.ready import DRIVE_READY_SECONDS, wait_until_ready
from pytp.tapeio.virtual_changer import VirtualChanger, create_virtual_library
from pytp.tapeio.virtual_drive import VirtualDrive, configure_drive
from tests.cli.runner import invoke
from tests.conftest import make_tree, write_library_config

BLOCK = 512 << 10


def _library(tmp_path: Path, not_ready_for: float) -> tuple[VirtualChanger, Path]:
    lib = create_virtual_library(tmp_path / "lib", "lib", drives=1, slots=2, tapes=1, tape_size=8 << 20)
    drive = Path(lib) / "drives" / "0"
    configure_drive(drive, not_ready_for=not_ready_for)
    return VirtualChanger(lib, name="lib"), drive


def test_a_drive_not_ready_for_a_while_is_waited_for(tmp_path: Path) -> None:
    changer, path = _library(tmp_path, not_ready_for=1.0)
    changer.load(1, 0)
    drive = VirtualDrive(path, name="d0")
    try:
        assert not drive.status().online and not drive.status().door_open
        with pytest.raises(DriveNotReady):
            drive.rewind()
        started = time.monotonic()
        waited = wait_until_ready(drive, timeout=30, poll=0.2)
        assert 0.5 <= waited <= 5 and time.monotonic() - started >= 0.5
        drive.rewind()
        assert drive.status().online and drive.status().bot
    finally:
        drive.close()


def test_the_wait_gives_up_after_the_timeout_with_a_clear_message(tmp_path: Path) -> None:
    changer, path = _library(tmp_path, not_ready_for=3600)
    changer.load(1, 0)
    drive = VirtualDrive(path, name="d0")
    try:
        started = time.monotonic()
        with pytest.raises(DriveNotReady, match=r"not ready 0.5 s after .*timeouts.drive_ready_seconds") as caught:
            wait_until_ready(drive, timeout=0.5, poll=0.1)
        assert time.monotonic() - started < 3
        assert caught.value.exit_code == EXIT_DRIVE
    finally:
        drive.close()


def test_no_tape_after_the_load_is_no_medium(tmp_path: Path) -> None:
    _, path = _library(tmp_path, not_ready_for=0)
    drive = VirtualDrive(path, name="d0")  # empty: the door is open
    try:
        with pytest.raises(NoMedium):
            wait_until_ready(drive, timeout=0.3, poll=0.1)
    finally:
        drive.close()


def test_the_wait_is_checked_against_a_clock_not_a_count() -> None:
    """Hours of calibration, simulated: the polls grow to ``poll`` and stop at the deadline."""

    class Slow:
        name = "slow"

        def __init__(self, clock: list[float]) -> None:
            self.clock = clock

        def status(self):  # type: ignore[no-untyped-def]
            from pytp.tapeio.drive import DriveStatus

            return DriveStatus(online=self.clock[0] >= 7000)

    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    waited = wait_until_ready(Slow(now), DRIVE_READY_SECONDS, poll=5, sleep=sleep, clock=lambda: now[0])
    assert 7000 <= waited < 7006 and max(sleeps) == 5 and sleeps[0] < 1
    now[0] = 0.0
    with pytest.raises(DriveNotReady):
        wait_until_ready(Slow(now), 6000, poll=5, sleep=sleep, clock=lambda: now[0])
    assert now[0] == 6000


def _site(tmp_path: Path, sqlite_url: str, timeouts: dict | None) -> Path:  # type: ignore[type-arg]
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    if timeouts is not None:
        data = json.loads(site.read_text())
        data["timeouts"] = timeouts
        site.write_text(json.dumps(data))
    return site


def test_defaults_are_what_real_libraries_need(tmp_path: Path, sqlite_url: str) -> None:
    config = read_config(_site(tmp_path, sqlite_url, None), "--config")
    assert config.timeouts == TimeoutsConfig()
    assert config.timeouts.changer_move_seconds == 900
    assert config.timeouts.drive_ready_seconds == 2 * 3600 + 10 * 60 == DRIVE_READY_SECONDS
    mtx = open_changer(LibraryConfig("big", "/dev/sg9", drives=("d0",), type="mtx"))
    assert mtx.timeout == 900  # type: ignore[attr-defined]


def test_configured_timeouts_reach_mtx_and_bad_values_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    site = _site(tmp_path, sqlite_url, {"changer_move_seconds": 1800, "drive_ready_seconds": 60})
    data = json.loads(site.read_text())
    data["tape_libraries"][0]["type"] = "mtx"
    data["tape_libraries"][0]["device_path"] = "/dev/sg9"
    site.write_text(json.dumps(data))
    config = read_config(site, "--config")
    assert config.timeouts.drive_ready_seconds == 60
    assert open_changer(config.libraries[0]).timeout == 1800  # type: ignore[attr-defined]
    for bad, message in (
        ({"changer_move": 5}, "unknown key 'timeouts.changer_move'; did you mean 'changer_move_seconds'"),
        ({"drive_ready_seconds": 0}, "timeouts.drive_ready_seconds must be greater than 0"),
        ({"drive_ready_seconds": "2h"}, "timeouts.drive_ready_seconds must be a number"),
    ):
        data["timeouts"] = bad
        site.write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=message):
            read_config(site, "--config")


def test_backup_waits_for_a_slow_drive_and_fails_clearly_after_the_timeout(tmp_path: Path, sqlite_url: str) -> None:
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    site = _site(tmp_path, sqlite_url, {"drive_ready_seconds": 20})
    lib = site.parent / "lib"
    configure_drive(lib / "drives" / "0", not_ready_for=1.5)
    started = time.monotonic()
    out = invoke(site, "backup", str(src), "-d", "d0").stdout
    assert "Job 1 ok" in out and time.monotonic() - started >= 1.5
    # A drive that stays not ready longer than configured: a clear error, the job is not left running.
    data = json.loads(site.read_text())
    data["timeouts"] = {"drive_ready_seconds": 1}
    site.write_text(json.dumps(data))
    configure_drive(lib / "drives" / "0", not_ready_for=600)
    r = invoke(site, "backup", str(src), "-d", "d0", expect=EXIT_DRIVE)
    assert "Error: Drive d0 was not ready 1 s after the tape was loaded" in r.stderr
    jobs = json.loads(invoke(site, "jobs", "--format", "json").stdout)
    assert [j["status"] for j in jobs if j["id"] != 1] in ([], ["failed"])
