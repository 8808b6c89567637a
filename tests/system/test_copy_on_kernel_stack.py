"""``pytp copy`` between the two drives of tgt's library, then a restore that reads the copy (issue 11, part 1).

One guest boot runs the plan (``guest_pytp.py run``, one Python process, as in
``test_pytp_on_kernel_stack.py``) at the default block size (512 KiB): a backup,
a copy read on ``/dev/nst0`` and written on ``/dev/nst1`` through ``st``, GNU tar
listing the copy's data file straight from ``/dev/nst1``, the original exported
to a vault through the import/export slot, and a restore that must come from
the copy and be identical.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from pytp.catalog.config import DEFAULT_BLOCK_SIZE

from . import harness
from .conftest import LibraryFactory
from .test_pytp_on_kernel_stack import Run, digests, restored, run_plan

BARCODES = {1: "CPY001L9", 2: "CPY002L9", 3: "CPY003L9"}
SPEC = harness.LibrarySpec(
    drives=2,
    slots=4,
    import_export=1,
    cartridges=tuple(harness.Cartridge(b, size_mb=32, slot=s) for s, b in BARCODES.items()),
)


def _plan() -> list[dict[str, Any]]:
    def p(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "pytp": ["--config", "${STATE}/config.json", *args]}

    out = "${PYTP_TEST_OUT}"
    return [
        p("backup", "backup", "${SRC}/data", "--job", "data", "-d", "drive0"),
        p(
            "copy",
            *("copy", "--job", "1", "--pool", "offsite", "--drive-from", "drive0", "--drive-to", "drive1"),
            "--keep-loaded",  # so that the next step finds the copy in drive1
        ),
        # GNU tar alone reads the copy's data file (tape file 1) from the drive that wrote it.
        {
            "name": "tar-copy",
            "sh": f"mt -f /dev/nst1 rewind && mt -f /dev/nst1 fsf 1 && tar -b {DEFAULT_BLOCK_SIZE // 512} "
            "-tf /dev/nst1",
        },
        p("tapes", "tapes", "--format", "json"),
        p("export", "vault", "export", "CPY001L9", "--to", "offsite-A"),
        p("plan", "restore", f"{out}/fromcopy", "--job", "1", "--plan", "-d", "drive0"),
        p("restore", "restore", f"{out}/fromcopy", "--job", "1", "-d", "drive0"),
    ]


def _config() -> dict[str, Any]:
    return {
        "catalog": {"url": "sqlite:///catalog.db"},
        "pools": [{"name": "default"}, {"name": "offsite"}],
        "default_pool": "default",
        "buffer": {"memory_buffer": 1 / 32},
        # No block_size: the default, 512 KiB.
        "tape_drives": [{"name": f"drive{i}", "device_path": f"/dev/nst{i}", "type": "st"} for i in range(2)],
        "tape_libraries": [
            {
                "name": "tgt",
                "device_path": "@CHANGER@",
                "slots": SPEC.slots,
                "drives": ["drive0", "drive1"],
                "type": "mtx",
            }
        ],
    }


def _sources(base: Path) -> Path:
    src = base / "src"
    data = src / "data"
    (data / "sub").mkdir(parents=True)
    rnd = random.Random(11)
    (data / "big.bin").write_bytes(rnd.randbytes(3_000_000))
    for i in range(8):
        (data / "sub" / f"f{i}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 5000)))
    return src


@pytest.fixture(scope="module")
def copy_run(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp("pytp-copy")
    src = _sources(base)
    library = module_library_factory(SPEC)
    return run_plan(guest_image, library, base, src, _config(), _plan(), "copy on tgt", timeout=600)


def test_copy_between_the_two_drives_and_restore_from_the_copy(copy_run: Run) -> None:
    copy_run.step("backup").ok()
    out = copy_run.step("copy").ok().stdout
    assert re.search(r"Copied 2 tape file\(s\)", out) and "two drives: drive0, drive1" in out, out
    assert "CPY002L9 (new)" in out, out
    assert "big.bin" in copy_run.step("tar-copy").ok().stdout
    tapes = {t["label"]: t for t in copy_run.step("tapes").json() if t["label"]}
    assert tapes["CPY002L9"]["pool"] == "offsite"
    assert tapes["CPY002L9"]["bytes_written"] == tapes["CPY001L9"]["bytes_written"], tapes  # the same blocks
    copy_run.step("export").ok()
    plan = copy_run.step("plan").ok().stdout
    assert "tape CPY002L9 (barcode CPY002L9" in plan and "copy of CPY001L9" in plan, plan
    restore = copy_run.step("restore").ok().stdout
    assert "from tape CPY002L9" in restore, restore
    source = copy_run.src / "data"
    assert digests(restored(copy_run.out, "fromcopy", source)) == digests(source)
