"""Drive health, cleaning and scrub on the real kernel stack (issue 11, part 2).

tgt's tape emulation answers LOG SENSE with ILLEGAL REQUEST (README, Tests), so
an ``st`` drive on tgt reports no TapeAlert page and no error counters: every
job must record its health as ``unavailable`` with the reason and still
succeed.  At the default 512 KiB blocks, with an ``st`` drive and the ``mtx``
changer: back up, scrub (the whole tape read back through ``st``), see the
result in ``pytp tapes``, and run a cleaning cartridge (``CLN…``) through the
drive with ``pytp clean`` (tgt loads it like any cartridge; pytp counts the use
and puts it back).

One guest boot runs the plan (``guest_pytp.py run``), as the other scenarios do.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .conftest import LibraryFactory
from .test_pytp_on_kernel_stack import Run, _mtx_status, run_plan

TAPE_MB = 16
CLEANER = "CLN001L1"
SPEC = harness.LibrarySpec(
    drives=1,
    slots=3,
    cartridges=(
        harness.Cartridge("HLT001L9", size_mb=TAPE_MB, slot=1),
        harness.Cartridge(CLEANER, size_mb=TAPE_MB, slot=3),
    ),
)


def _plan() -> list[dict[str, Any]]:
    def p(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "pytp": ["--config", "${STATE}/config.json", *args]}

    return [
        p("backup", "backup", "${SRC}/health", "--job", "health", "--format", "json"),
        p("scrub-plan", "scrub", "--dry-run", "--format", "json"),
        p("scrub", "scrub", "--format", "json"),
        p("tapes", "tapes", "--format", "json"),
        p("drives", "drives", "--recorded", "--format", "json"),
        p("clean", "clean", "drive0"),
        {"name": "mtx-after-clean", "sh": 'mtx -f "$PYTP_TEST_CHANGER" status'},
        p("scrub-again", "scrub", "--format", "json"),
    ]


def _config() -> dict[str, Any]:
    return {
        "catalog": {"url": "sqlite:///catalog.db"},
        "pools": [{"name": "default"}],
        "default_pool": "default",
        "buffer": {"memory_buffer": 1 / 32},
        # No block_size: the default, 512 KiB.
        "tape_drives": [{"name": "drive0", "device_path": "/dev/nst0", "type": "st"}],
        "tape_libraries": [
            {"name": "tgt", "device_path": "@CHANGER@", "slots": SPEC.slots, "drives": ["drive0"], "type": "mtx"}
        ],
    }


def _sources(base: Path) -> Path:
    src = base / "src"
    tree = src / "health"
    tree.mkdir(parents=True)
    rnd = random.Random(12)
    (tree / "big.bin").write_bytes(rnd.randbytes(1_200_000))
    for i in range(8):
        (tree / f"f{i:02d}").write_bytes(rnd.randbytes(rnd.randint(0, 4000)))
    return src


@pytest.fixture(scope="module")
def health_run(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp("pytp-health")
    src = _sources(base)
    library = module_library_factory(SPEC)
    return run_plan(guest_image, library, base, src, _config(), _plan(), "health scenario", timeout=600)


def test_a_drive_without_log_sense_records_unavailable_and_the_job_succeeds(health_run: Run) -> None:
    summary = health_run.step("backup").json()
    assert (summary["status"], summary["exit_code"]) == ("ok", 0)
    health = summary["health"]
    assert (health["drive"], health["available"], health["tapealert"]) == ("drive0", False, [])
    assert health["unavailable"]  # the reason: no LOG SENSE page, or no sg_logs in the guest
    assert any(n.startswith("drive drive0: health unavailable: ") for n in summary["notes"])
    (drive,) = health_run.step("drives").json()
    # The newest recorded reading is the scrub's, which ran before this look.
    assert drive["recorded"]["phase"] == "scrub" and drive["recorded"]["available"] is False


def test_scrub_reads_the_whole_tape_through_st_and_records_it(health_run: Run) -> None:
    (planned,) = health_run.step("scrub-plan").json()
    assert (planned["tape"], planned["reason"]) == ("HLT001L9", "never verified")
    summary = health_run.step("scrub").json()
    assert (summary["kind"], summary["status"], summary["tapes"]) == ("scrub", "ok", ["HLT001L9"])
    (tape,) = summary["scrubbed"]
    assert tape["result"] == "ok" and tape["checked"] == 10 and tape["problems"] == 0  # the directory and 9 files
    assert tape["health"]["available"] is False
    row = next(t for t in health_run.step("tapes").json() if t["label"] == "HLT001L9")
    assert row["last_verify_result"] == "ok" and row["last_verified"]
    assert row["errors"] is None  # tgt reported no counters
    again = health_run.step("scrub-again").json()
    assert again["tapes"] == [] and again["not_due"] == 1


def test_clean_runs_the_cleaning_cartridge_through_the_drive_and_counts_it(health_run: Run) -> None:
    step = health_run.step("clean")
    assert step.exit_code == 0, repr(step)
    assert f"Cleaned drive drive0 with {CLEANER} from slot 3 (use 1 of that cartridge)." in step.stdout
    mtx = _mtx_status(health_run.step("mtx-after-clean").ok().stdout)
    assert mtx["slots"][3] == CLEANER
    assert CLEANER not in [barcode for barcode, _ in mtx["drives"].values()]
