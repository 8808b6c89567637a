"""Drive serials and the wait for ready on the kernel's st driver (issue 11, part 2).

In the QEMU guest, against tgt's SSC drives through st: each drive's serial
number is read from sysfs (``vpd_pg80``, what ``tapeio.drive_serial`` uses to
match drives to library elements), each serial finds its own node, and
``tapeio.ready.wait_until_ready`` returns for a drive the changer just loaded
and gives up with ``NoMedium`` on an empty one (st reports ``DR_OPEN``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .conftest import LibraryFactory

SPEC = harness.LibrarySpec(drives=2, slots=2, cartridges=(harness.Cartridge("SER001L9", size_mb=16, slot=1),))

PROBE = r"""
import json, sys
from pytp.tapeio.drive_serial import find_st_by_serial, st_devices, st_serial
from pytp.tapeio.errors import TapeIOError
from pytp.tapeio.ready import wait_until_ready
from pytp.tapeio.st_drive import StDrive

t0, t1, out = sys.argv[1:4]
serials = {d: st_serial(d) for d in (t0, t1)}
result = {"devices": st_devices(), "serials": serials}
result["found"] = {d: find_st_by_serial(s) for d, s in serials.items() if s}
drive = StDrive(t0, name="t0")
try:
    result["ready_seconds"] = wait_until_ready(drive, 120, poll=1)
    result["online"] = drive.status().online
finally:
    drive.close()
empty = StDrive(t1, name="t1")
try:
    wait_until_ready(empty, 3, poll=0.5)
    result["empty"] = "ready"
except TapeIOError as err:
    result["empty"] = type(err).__name__
finally:
    empty.close()
with open(out, "w") as f:
    json.dump(result, f)
"""

SCRIPT = r"""
set -u
C=$PYTP_TEST_CHANGER
read -r T0 T1 <<< "$PYTP_TEST_TAPES"
step load-0 mtx -f "$C" load 1 0
step probe "$PYTP_TEST_PYTHON" -c "$PROBE" "$T0" "$T1" "$PYTP_TEST_OUT/probe.json"
"""


@pytest.fixture(scope="module")
def probe(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    library = module_library_factory(SPEC)
    result = harness.run_in_guest(
        guest_image, library, SCRIPT, timeout=300, env={"PROBE": PROBE}, workdir=tmp_path_factory.mktemp("serial")
    )
    for name in ("load-0", "probe"):
        result.step(name).check()
    path = Path(result.out_dir) / "probe.json"
    assert path.is_file(), f"the guest wrote no {path.name}\n{result.describe()}"
    return json.loads(path.read_text())


def test_each_st_drive_has_a_serial_in_sysfs_and_it_finds_its_node(probe: dict[str, Any]) -> None:
    serials = probe["serials"]
    assert probe["devices"][:2] == list(serials), probe
    assert all(serials.values()), f"no vpd_pg80 serial in the guest's sysfs: {probe}"
    assert len(set(serials.values())) == 2, probe
    assert probe["found"] == {device: device for device in serials}


def test_a_loaded_drive_is_ready_and_an_empty_one_is_no_medium(probe: dict[str, Any]) -> None:
    assert probe["online"] is True and 0 <= probe["ready_seconds"] < 120
    assert probe["empty"] == "NoMedium"
