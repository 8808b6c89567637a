"""Drives matched to library elements by serial number, the configured order as the fallback (issue 11, part 2).

The parsers run on a real ``tapeinfo`` transcript (tests/fixtures/hardware,
SOURCES.md) and on Unit Serial Number VPD pages laid out as SPC-4 defines
them, as the kernel exports them in sysfs.  The matching runs on the virtual
library, whose drives carry serials in their state: with the st nodes
"renumbered" (device paths swapped in the configuration), a backup still
writes through the drive the changer loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytp.catalog.config import read_config
from pytp.catalog.drive_matching import BY_ORDER, BY_SERIAL, MISMATCH, match_drive
from pytp.tapeio.drive_serial import (
    find_st_by_serial,
    parse_tapeinfo_serial,
    parse_vpd_pg80,
    st_devices,
    st_serial,
)
from pytp.tapeio.exitcodes import EXIT_SUCCESS
from pytp.tapeio.virtual_drive import configure_drive, drive_serial
from tests.cli.runner import invoke
from tests.conftest import make_tree, write_library_config
from tests.tapeio.transcripts import fixture

BLOCK = 512 << 10


@pytest.mark.parametrize("name", ["tapeinfo--ibm-lto8-hh8-bot.txt", "tapeinfo--ibm-lto8-hh8-midtape.txt"])
def test_tapeinfo_serial_of_a_real_ibm_lto8(name: str) -> None:
    assert parse_tapeinfo_serial(fixture(name)) == "10WT087648"


def test_tapeinfo_without_a_serial_line() -> None:
    assert parse_tapeinfo_serial("Product Type: Tape Drive\nVendor ID: 'IBM     '\n") is None
    assert parse_tapeinfo_serial("SerialNumber: '   '\n") is None


def _page(serial: bytes, pad: bytes = b"") -> bytes:
    body = serial + pad
    return bytes([0x01, 0x80]) + len(body).to_bytes(2, "big") + body


def test_vpd_page_0x80() -> None:
    assert parse_vpd_pg80(_page(b"10WT087648")) == "10WT087648"
    assert parse_vpd_pg80(_page(b"HU1234ABCD", b"    ")) == "HU1234ABCD"  # space-padded, as many drives do
    assert parse_vpd_pg80(_page(b"X1", b"\x00\x00")) == "X1"
    assert parse_vpd_pg80(_page(b"X1") + b"trailing") == "X1"  # only the announced length counts
    assert parse_vpd_pg80(bytes([0x01, 0x83, 0x00, 0x02]) + b"X1") is None  # another page
    assert parse_vpd_pg80(b"\x01\x80") is None  # truncated
    assert parse_vpd_pg80(_page(b"    ")) is None


def test_sysfs_lookup(tmp_path: Path) -> None:
    sysfs = tmp_path / "scsi_tape"
    for name, serial in (("nst0", b"AAA111"), ("nst1", b"BBB222"), ("nst10", b"CCC333")):
        (sysfs / name / "device").mkdir(parents=True)
        (sysfs / name / "device" / "vpd_pg80").write_bytes(_page(serial, b"  "))
    for other in ("st0", "nst0a", "nst0l", "nst1m"):  # rewinding and mode nodes are not candidates
        (sysfs / other).mkdir()
    (sysfs / "nst2" / "device").mkdir(parents=True)  # a drive without the page
    assert st_devices(str(sysfs)) == ["/dev/nst0", "/dev/nst1", "/dev/nst2", "/dev/nst10"]
    assert st_serial("/dev/nst1", str(sysfs)) == "BBB222"
    assert st_serial("/dev/nst2", str(sysfs)) is None
    assert find_st_by_serial("CCC333", str(sysfs)) == "/dev/nst10"
    assert find_st_by_serial("ZZZ", str(sysfs)) is None


def _site(tmp_path: Path, sqlite_url: str, devices: list[str], serials: list[str | None]) -> Path:
    """Two virtual drives with serials S0/S1; the configuration names ``devices`` and ``serials`` for d0, d1."""
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    lib = site.parent / "lib"
    configure_drive(lib / "drives" / "0", serial="S0")
    configure_drive(lib / "drives" / "1", serial="S1")
    data = json.loads(site.read_text())
    for drive, device, serial in zip(data["tape_drives"], devices, serials):
        drive["device_path"] = str(lib / "drives" / device)
        if serial is not None:
            drive["serial"] = serial
    site.write_text(json.dumps(data))
    return site


def test_matched_by_serial_when_the_nodes_are_renumbered(tmp_path: Path, sqlite_url: str) -> None:
    # The kernel swapped the nodes: the configured paths point at the other drive.
    site = _site(tmp_path, sqlite_url, ["1", "0"], ["S0", "S1"])
    config = read_config(site, "--config")
    lib = site.parent / "lib"
    assert drive_serial(lib / "drives" / "0") == "S0"
    d0 = match_drive(config.drive("d0"))
    assert d0.how == BY_SERIAL and d0.device == str(lib / "drives" / "0")
    assert "serial S0 is at" in d0.note and "(which has serial S1)" in d0.note
    src = make_tree(tmp_path / "src", big_file=1 << 20)
    # The changer loads element 0; pytp writes through the drive that has element 0's serial.
    out = invoke(site, "backup", str(src), "-d", "d0").stdout
    assert "Job 1 ok" in out
    rows = {r["name"]: r for r in json.loads(invoke(site, "drives", "--format", "json").stdout)}
    assert rows["d0"]["matched"] == "serial" and rows["d0"]["serial"] == "S0"
    assert rows["d0"]["device"] == str(lib / "drives" / "0")
    assert rows["d0"]["configured_device"] == str(lib / "drives" / "1")
    table = invoke(site, "drives").stdout
    assert "d0: serial: serial S0 is at" in table


def test_without_serials_the_configured_order_is_used_and_said(tmp_path: Path, sqlite_url: str) -> None:
    site = _site(tmp_path, sqlite_url, ["0", "1"], [None, None])
    rows = {r["name"]: r for r in json.loads(invoke(site, "drives", "--format", "json").stdout)}
    assert rows["d0"]["matched"] == BY_ORDER
    assert rows["d0"]["match_note"] == "no serial configured (the device reports S0)"
    assert "d1: configured order: no serial configured" in invoke(site, "drives").stdout


def test_a_serial_no_drive_has_is_a_mismatch_and_the_order_stands(tmp_path: Path, sqlite_url: str) -> None:
    site = _site(tmp_path, sqlite_url, ["0", "1"], ["S0", "NOPE"])
    config = read_config(site, "--config")
    d1 = match_drive(config.drive("d1"))
    assert d1.how == MISMATCH and d1.device == config.drive("d1").device_path
    assert "the configuration says NOPE" in d1.note
    assert match_drive(config.drive("d0")).how == BY_SERIAL
    result = invoke(site, "drives")
    assert result.exit_code == EXIT_SUCCESS
    assert "d1: serial mismatch:" in result.stdout


def test_a_serial_key_with_the_wrong_type_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    site = _site(tmp_path, sqlite_url, ["0", "1"], ["S0", "S1"])
    data = json.loads(site.read_text())
    data["tape_drives"][0]["serial"] = 1234
    site.write_text(json.dumps(data))
    from pytp.catalog.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tape_drives\[0\]\.serial must be a string"):
        read_config(site, "--config")
