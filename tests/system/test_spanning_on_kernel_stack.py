"""Spanning at the default block size on the real kernel stack (issue 8, defect 2).

A job of about 28 MB goes to 16 MB cartridges of tgt through ``st`` with the
block size a new user gets (512 KiB): it must span, the part manifest of each
full tape must open the next one, and the job must restore and verify
identical after ``pytp catalog rebuild --all`` from the tapes alone.

One guest boot runs the plan (``guest_pytp.py run``, one Python process, as in
``test_pytp_on_kernel_stack.py``); the tests below check what it recorded.
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
from .test_pytp_on_kernel_stack import Run, _entries, digests, restored, run_plan

TAPE_MB = 16
BARCODES = {1: "SPN001L9", 2: "SPN002L9", 3: "SPN003L9", 4: "SPN004L9"}
SPEC = harness.LibrarySpec(
    drives=1,
    slots=4,
    cartridges=tuple(harness.Cartridge(b, size_mb=TAPE_MB, slot=s) for s, b in BARCODES.items()),
)
BIG = (8_000_000, 8_000_000, 4_500_000)  # about 20 MB: more than one 16 MB cartridge
SMALL = 40  # small files after the big ones (each restored member costs seconds under TCG)


def _plan() -> list[dict[str, Any]]:
    def p(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "pytp": ["--config", "${STATE}/config.json", *args]}

    out = "${PYTP_TEST_OUT}"
    return [
        p("backup", "backup", "${SRC}/span", "--job", "span"),
        p("jobs", "jobs", "--format", "json"),
        p("tapes", "tapes", "--format", "json"),
        p("search-before", "search", "${SRC}", "--format", "json"),
        p("verify", "verify", "--job", "1"),
        {"name": "drop-catalog", "sh": 'rm -v "$STATE"/catalog.db*'},
        p("rebuild", "catalog", "rebuild", "--all"),
        p("search-after", "search", "${SRC}", "--format", "json"),
        p("jobs-after", "jobs", "--format", "json"),
        p("restore-after", "restore", f"{out}/after", "--job", "1"),
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
    span = src / "span"
    (span / "small").mkdir(parents=True)
    rnd = random.Random(8)
    for i, size in enumerate(BIG):
        (span / f"big-{i}.bin").write_bytes(rnd.randbytes(size))
    for i in range(SMALL):
        (span / "small" / f"s{i:03d}").write_bytes(rnd.randbytes(rnd.randint(0, 4000)))
    return src


@pytest.fixture(scope="module")
def span_run(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp("pytp-span")
    src = _sources(base)
    library = module_library_factory(SPEC)
    title = f"spanning at {DEFAULT_BLOCK_SIZE} bytes"
    return run_plan(guest_image, library, base, src, _config(), _plan(), title, timeout=900)


def test_the_job_spans_16_mb_cartridges_at_the_default_block_size(span_run: Run) -> None:
    out = span_run.step("backup").ok().stdout
    assert re.search(r"^Job 1 ok\b", out, re.MULTILINE), out
    job = span_run.step("jobs").json()[0]
    assert job["status"] == "ok" and len(job["tapes"]) >= 2, job
    parts = re.findall(r"^\s+(\S+) file (\d+): .* \((\d+) blocks\)$", out, re.MULTILINE)
    # The first tape's data is file 1; every later tape opens with the part
    # manifest of the tape before it, so its data is file 2.
    assert parts[0][:2] == (job["tapes"][0], "1"), out
    assert all(number == "2" for _, number, _ in parts[1:]), out
    tapes = {t["label"]: t for t in span_run.step("tapes").json()}
    for label in job["tapes"][:-1]:
        assert tapes[label]["status"] == "full", tapes[label]
        assert tapes[label]["bytes_written"] % DEFAULT_BLOCK_SIZE == 0


def test_the_spanned_job_verifies(span_run: Run) -> None:
    assert re.search(r"0 problem\(s\)", span_run.step("verify").ok().stdout)


def test_rebuild_from_the_tapes_gives_the_same_catalog_and_restores_identical(span_run: Run) -> None:
    # One restore only, after the rebuild: restoring is slow under TCG.
    out = span_run.step("rebuild").ok().stdout
    assert re.search(r"\b1 job\(s\) added\b", out), out
    before = _entries(span_run.step("search-before").json())
    after = _entries(span_run.step("search-after").json())
    assert len(before) > SMALL and after == before
    assert span_run.step("jobs-after").json()[0]["status"] == "ok"
    span_run.step("restore-after").ok()
    source = span_run.src / "span"
    assert digests(restored(span_run.out, "after", source)) == digests(source)
