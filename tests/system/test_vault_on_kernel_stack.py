"""Vaults on the real kernel stack (issue 11, part 1): export through tgt's import/export slot and back.

At the default 512 KiB blocks, with an ``st`` drive and the ``mtx`` changer:
label a tape, back up, export it with ``pytp vault export`` (``mtx status``
shows it in the mail slot), refuse a second export while the only mail slot
is full, import it back (its label is read in the drive), and restore the
job from it.  A cartridge cannot leave tgt's mail slot, so the operator
here brings it straight back.

One guest boot runs the plan (``guest_pytp.py run``, one Python process, as in
``test_pytp_on_kernel_stack.py``); the tests below check what it recorded.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pytp.tapeio import exitcodes

from . import harness
from .conftest import LibraryFactory
from .test_pytp_on_kernel_stack import Run, _mtx_status, digests, restored, run_plan

TAPE_MB = 16
TAPES = {1: "VLT001L9", 2: "VLT002L9"}
SPEC = harness.LibrarySpec(
    drives=1,
    slots=3,
    import_export=1,
    cartridges=tuple(harness.Cartridge(b, size_mb=TAPE_MB, slot=s) for s, b in TAPES.items()),
)
IE_SLOT = SPEC.slots + 1  # mtx numbers import/export slots after the storage slots


def _plan() -> list[dict[str, Any]]:
    def p(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "pytp": ["--config", "${STATE}/config.json", *args]}

    mtx = 'mtx -f "$PYTP_TEST_CHANGER" status'
    return [
        p("label", "label", "--barcode", "VLT001L9"),
        p("backup", "backup", "${SRC}/vault", "--job", "vaulted"),
        p("label-second", "label", "--barcode", "VLT002L9"),
        p("export", "vault", "export", "VLT001L9", "--to", "offsite-A", "--format", "json"),
        {"name": "mtx-after-export", "sh": mtx},
        p("export-full", "vault", "export", "VLT002L9", "--to", "offsite-A"),
        p("list-exported", "vault", "list", "--format", "json"),
        p("tapes-exported", "tapes", "--format", "json"),
        p("import", "vault", "import", "--format", "json"),
        {"name": "mtx-after-import", "sh": mtx},
        p("list-after", "vault", "list", "--format", "json"),
        p("restore", "restore", "${PYTP_TEST_OUT}/back", "--job", "1"),
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
    tree = src / "vault"
    (tree / "sub").mkdir(parents=True)
    rnd = random.Random(11)
    (tree / "big.bin").write_bytes(rnd.randbytes(1_500_000))
    for i in range(10):
        (tree / "sub" / f"s{i:02d}").write_bytes(rnd.randbytes(rnd.randint(0, 3000)))
    return src


@pytest.fixture(scope="module")
def vault_run(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp("pytp-vault")
    src = _sources(base)
    library = module_library_factory(SPEC)
    return run_plan(guest_image, library, base, src, _config(), _plan(), "vault scenario", timeout=600)


def test_export_puts_the_tape_into_the_mail_slot_and_records_the_vault(vault_run: Run) -> None:
    vault_run.step("backup").ok()
    (exported,) = vault_run.step("export").json()
    assert exported["label"] == "VLT001L9" and exported["vault"] == "offsite-A"
    assert exported["mail_slot"] == IE_SLOT and exported["library"] == "tgt"
    mtx = _mtx_status(vault_run.step("mtx-after-export").ok().stdout)
    assert mtx["slots"][IE_SLOT] == "VLT001L9"
    assert "VLT001L9" not in [barcode for barcode, _ in mtx["drives"].values()]
    assert "VLT001L9" not in [b for n, b in mtx["slots"].items() if n != IE_SLOT]
    (row,) = vault_run.step("list-exported").json()
    assert (row["label"], row["vault"], row["waiting_in"]) == ("VLT001L9", "offsite-A", f"tgt:slot {IE_SLOT}")
    tapes = {t["label"]: t for t in vault_run.step("tapes-exported").json() if t["label"]}
    assert tapes["VLT001L9"]["slot"] == IE_SLOT


def test_a_second_export_with_the_mail_slot_full_is_refused(vault_run: Run) -> None:
    step = vault_run.step("export-full")
    assert step.exit_code == exitcodes.EXIT_CHANGER, repr(step)
    assert "Error: Library tgt has no empty import/export slot for VLT002L9" in step.stderr


def test_import_reads_the_label_and_the_tape_restores(vault_run: Run) -> None:
    (found,) = vault_run.step("import").json()
    assert (found["barcode"], found["result"], found["vault"], found["mail_slot"]) == (
        "VLT001L9",
        "back",
        "offsite-A",
        IE_SLOT,
    )
    mtx = _mtx_status(vault_run.step("mtx-after-import").ok().stdout)
    assert mtx["slots"][IE_SLOT] is None and mtx["slots"][found["slot"]] == "VLT001L9"
    assert vault_run.step("list-after").json() == []
    vault_run.step("restore").ok()
    source = vault_run.src / "vault"
    assert digests(restored(vault_run.out, "back", source)) == digests(source)
