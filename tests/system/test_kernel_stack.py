"""The real kernel tape stack, driven by mt, mtx and GNU tar in a QEMU guest.

One guest boot runs the whole scenario below (under TCG every boot costs
seconds); each test then checks one part of what it recorded. The facts
checked here are the ones pytp relies on: device discovery, the changer's
barcodes, fixed-block tar archives separated by filemarks and found again by
``mt fsf``, end of medium, unload and transfer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import re
import time
from pathlib import Path

import pytest

from . import harness
from .conftest import LibraryFactory

BLOCK = 65536
BLOCKING = BLOCK // 512  # tar -b counts 512-byte records

SPEC = harness.LibrarySpec(
    drives=2,
    slots=8,
    import_export=1,
    cartridges=(
        harness.Cartridge("PRB001L9", size_mb=64, slot=1),
        harness.Cartridge("PRB002L9", size_mb=64, slot=2),
        harness.Cartridge("PRB003L9", size_mb=10, slot=3),
        harness.Cartridge("PRB004L9", size_mb=64, mailslot=1),
    ),
)

SCENARIO = r"""
set -u
C=$PYTP_TEST_CHANGER
read -r T0 T1 <<< "$PYTP_TEST_TAPES"
OUT=$PYTP_TEST_OUT

step lsscsi lsscsi -g
step mtx-status-initial mtx -f "$C" status
step mt-status-empty-drive mt -f "$T1" status
step mtx-load-empty-slot mtx -f "$C" load 7 1

# Load, and see the position unknown until the rewind.
step mtx-load mtx -f "$C" load 1 0
step mt-status-after-load mt -f "$T0" status
step mt-rewind mt -f "$T0" rewind
step mt-status-bot mt -f "$T0" status
step mt-setblk mt -f "$T0" setblk 65536
step mt-status-fixed mt -f "$T0" status

# Two archives, each closed by the filemark the nst driver writes on close.
step tar-write-1 tar -b 128 -cf "$T0" -C "$SRC1" .
step tar-write-2 tar -b 128 -cf "$T0" -C "$SRC2" .
step mt-status-after-writes mt -f "$T0" status
step mt-tell mt -f "$T0" tell

# Back to the second archive by filemark, as pytp's restore does.
step mt-rewind-2 mt -f "$T0" rewind
step mt-fsf-1 mt -f "$T0" fsf 1
step mt-status-after-fsf mt -f "$T0" status
mkdir -p "$OUT/extract2"
step tar-extract-2 tar -b 128 -xf "$T0" -C "$OUT/extract2"
step mt-rewind-3 mt -f "$T0" rewind
step tar-list-1 tar -b 128 -tf "$T0"

# Fill a 10 MB cartridge in the other drive.
step mtx-load-small mtx -f "$C" load 3 1
step mt-status-after-load-small mt -f "$T1" status
step mt-rewind-small mt -f "$T1" rewind
step mt-setblk-small mt -f "$T1" setblk 65536
step dd-fill dd if=/dev/zero of="$T1" bs=64k count=400
step mt-status-full mt -f "$T1" status
head -c 12M /dev/zero > /dev/shm/big
step mt-rewind-small-2 mt -f "$T1" rewind
step tar-fill tar -b 128 -cf "$T1" -C /dev/shm big
rm -f /dev/shm/big

# Unload (to the slot it came from, and to a named one), transfer.
step mtx-unload-to-origin mtx -f "$C" unload
# A drive that has been used before: load another tape into it.
step mtx-reload mtx -f "$C" load 2 0
step mt-status-after-reload mt -f "$T0" status
step mt-rewind-reload mt -f "$T0" rewind
step mt-status-after-reload-rewind mt -f "$T0" status
step mtx-unload-reload mtx -f "$C" unload
step mtx-unload-small mtx -f "$C" unload 3 1
step mt-status-unloaded mt -f "$T0" status
step mtx-transfer mtx -f "$C" transfer 2 5
step mtx-transfer-from-ie mtx -f "$C" transfer 9 6
step mtx-status-final mtx -f "$C" status

step python-import python3 -c '
import sys
import pytp.tapeio
print(pytp.tapeio.__file__)
print(" ".join(sorted(m for m in ("sqlalchemy", "sqlmodel", "alembic", "click") if m in sys.modules)))
'
exit 0
"""


def _make_tree(root: Path, seed: int, big: int) -> Path:
    rnd = random.Random(seed)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "big.bin").write_bytes(rnd.randbytes(big))
    for i in range(20):
        (root / "sub" / f"small-{i}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 5000)))
    (root / "sub" / "deeper" / "odd size.dat").write_bytes(rnd.randbytes(BLOCK + 1))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("sub/small-1.txt")
    return root


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


class Scenario:
    def __init__(self, result: harness.GuestResult, src1: Path, src2: Path, library: harness.TapeLibrary) -> None:
        self.result = result
        self.src1 = src1
        self.src2 = src2
        self.library = library

    def step(self, name: str) -> harness.StepResult:
        return self.result.step(name)


@pytest.fixture(scope="module")
def scenario(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Scenario:
    src1 = _make_tree(tmp_path_factory.mktemp("src1"), seed=1, big=300_000)
    src2 = _make_tree(tmp_path_factory.mktemp("src2"), seed=2, big=2_500_000)
    library = module_library_factory(SPEC)
    t0 = time.monotonic()
    result = harness.run_in_guest(
        guest_image,
        library,
        SCENARIO,
        timeout=600,
        env={"SRC1": str(src1), "SRC2": str(src2)},
        workdir=tmp_path_factory.mktemp("guest"),
    )
    elapsed = time.monotonic() - t0
    # Shown with -rP / on failure: where the time goes.
    print(f"scenario: {elapsed:.1f} s wall, guest timings {result.timings}")
    for s in result.steps.values():
        print(f"  {s.name:28s} {s.seconds:6.2f} s  rc={s.exit_code}")
    result.check()
    return Scenario(result, src1, src2, library)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_lsscsi_shows_two_tapes_and_a_changer(scenario: Scenario) -> None:
    out = scenario.step("lsscsi").check().stdout
    types = [line.split()[1] for line in _lines(out)]
    assert sorted(types) == ["mediumx", "tape", "tape"], out
    devices = scenario.result.devices
    assert devices.tapes == ("/dev/nst0", "/dev/nst1")
    assert devices.changer is not None and re.fullmatch(r"/dev/sg\d+", devices.changer)
    assert devices.changer_sch == "/dev/sch0"
    # The changer's sg node is the one lsscsi lists on the mediumx line.
    (mediumx,) = [line for line in _lines(out) if " mediumx " in line]
    assert mediumx.split()[-1] == devices.changer
    assert "VIRTUAL-CHANGER" in mediumx


def test_mtx_status_lists_the_barcodes_given_to_tgt(scenario: Scenario) -> None:
    out = scenario.step("mtx-status-initial").check().stdout
    assert re.search(r"Storage Changer /dev/sg\d+:2 Drives, 9 Slots \( 1 Import/Export \)", out), out
    assert re.search(r"Data Transfer Element 0:Empty", out)
    assert re.search(r"Data Transfer Element 1:Empty", out)
    for slot, barcode in ((1, "PRB001L9"), (2, "PRB002L9"), (3, "PRB003L9")):
        assert re.search(rf"Storage Element {slot}:Full :VolumeTag={barcode}\b", out), out
    for slot in range(4, 9):
        assert re.search(rf"Storage Element {slot}:Empty", out), out
    assert re.search(r"Storage Element 9 IMPORT/EXPORT:Full :VolumeTag=PRB004L9\b", out), out


def test_mtx_load_from_an_empty_slot_fails(scenario: Scenario) -> None:
    step = scenario.step("mtx-load-empty-slot")
    assert step.exit_code != 0
    assert "Storage Element 7" in step.stdout + step.stderr
    assert "is Empty" in step.stdout + step.stderr


def test_drive_without_tape_reports_door_open(scenario: Scenario) -> None:
    out = scenario.step("mt-status-empty-drive").check().stdout
    assert _flags(out) == {"DR_OPEN", "IM_REP_EN"}, out
    assert _position(out) == (-1, -1), out


def _position(status: str) -> tuple[int, int]:
    m = re.search(r"File number=(-?\d+), block number=(-?\d+)", status)
    assert m, status
    return int(m.group(1)), int(m.group(2))


def _flags(status: str) -> set[str]:
    return set(status.strip().splitlines()[-1].split())


def test_position_after_load_is_not_trustworthy_until_rewind(scenario: Scenario) -> None:
    """What st reports after a changer load depends on the drive's history.

    tgt signals no medium change to st, so: a drive never opened before
    reports BOT (st's first open assumes it); a drive opened while empty
    reports -1/-1; a drive used before keeps the previous tape's position.
    Only a rewind makes the position true, which is why pytp rewinds after
    every load.
    """
    assert "Loading media from Storage Element 1 into drive 0...done" in scenario.step("mtx-load").check().stdout
    fresh = scenario.step("mt-status-after-load").check().stdout
    assert _position(fresh) == (0, 0) and "BOT" in _flags(fresh), fresh

    opened_empty = scenario.step("mt-status-after-load-small").check().stdout
    assert _position(opened_empty) == (-1, -1), opened_empty
    assert _flags(opened_empty) == {"ONLINE", "IM_REP_EN"}, opened_empty

    assert "Loading media from Storage Element 2 into drive 0...done" in scenario.step("mtx-reload").check().stdout
    stale = scenario.step("mt-status-after-reload").check().stdout
    # The position where drive 0 stopped on the previous tape (tar-list-1
    # read a few blocks of file 0), and the block size set for that tape.
    assert _position(stale)[0] == 0 and _position(stale)[1] > 0, stale
    assert "BOT" not in _flags(stale), stale
    assert "Tape block size 65536 bytes" in stale, stale

    for name in ("mt-status-bot", "mt-status-after-reload-rewind"):
        rewound = scenario.step(name).check().stdout
        assert _position(rewound) == (0, 0) and "BOT" in _flags(rewound), rewound


def test_setblk_sets_fixed_block_mode(scenario: Scenario) -> None:
    scenario.step("mt-setblk").check()
    fixed = scenario.step("mt-status-fixed").check().stdout
    assert "Tape block size 65536 bytes" in fixed, fixed


def test_two_tar_archives_separated_by_filemarks(scenario: Scenario) -> None:
    scenario.step("tar-write-1").check()
    scenario.step("tar-write-2").check()
    after = scenario.step("mt-status-after-writes").check().stdout
    # Two files written, each closed by a filemark: the drive sits at file 2.
    assert _position(after) == (2, 0), after
    scenario.step("mt-rewind-2").check()
    scenario.step("mt-fsf-1").check()
    fsf = scenario.step("mt-status-after-fsf").check().stdout
    assert _position(fsf) == (1, 0), fsf
    assert "EOF" in _flags(fsf), fsf


def test_second_archive_extracts_identical_to_its_source(scenario: Scenario) -> None:
    scenario.step("tar-extract-2").check()
    extracted = scenario.result.out_dir / "extract2"
    assert _digests(extracted) == _digests(scenario.src2)


def test_first_archive_lists_after_rewind(scenario: Scenario) -> None:
    listed = {name.rstrip("/") for name in _lines(scenario.step("tar-list-1").check().stdout)}
    expected = {"."} | {"./" + rel for rel in _digests(scenario.src1)}
    assert listed == expected


def test_tell_is_not_supported_by_tgt(scenario: Scenario) -> None:
    # tgt's SSC emulation has no READ POSITION: pytp positions by filemarks.
    step = scenario.step("mt-tell")
    assert step.exit_code != 0
    assert "Input/output error" in step.stderr, step.stderr


def test_small_cartridge_fills_with_no_space_left(scenario: Scenario) -> None:
    for name in ("mtx-load-small", "mt-rewind-small", "mt-setblk-small"):
        scenario.step(name).check()
    dd = scenario.step("dd-fill")
    assert dd.exit_code != 0, dd.stderr
    assert "No space left on device" in dd.stderr, dd.stderr
    m = re.search(r"^(\d+)\+(\d+) records out", dd.stderr, re.MULTILINE)
    assert m, dd.stderr
    written = int(m.group(1)) * BLOCK
    # The 10 MB cartridge takes at most its capacity, and most of it.
    assert 8 * 2**20 <= written <= 10 * 2**20 + BLOCK, dd.stderr
    # The driver closed the full file with a filemark all the same.
    full = scenario.step("mt-status-full").check().stdout
    assert _position(full) == (1, 0), full
    tar = scenario.step("tar-fill")
    assert tar.exit_code != 0
    assert "No space left on device" in tar.stderr, tar.stderr


def test_unload_and_transfer(scenario: Scenario) -> None:
    assert "Unloading drive 0 into Storage Element 1...done" in scenario.step("mtx-unload-to-origin").check().stdout
    assert "Unloading drive 1 into Storage Element 3...done" in scenario.step("mtx-unload-small").check().stdout
    unloaded = scenario.step("mt-status-unloaded").check().stdout
    assert "DR_OPEN" in _flags(unloaded), unloaded
    assert "Unloading drive 0 into Storage Element 2...done" in scenario.step("mtx-unload-reload").check().stdout
    scenario.step("mtx-transfer").check()
    scenario.step("mtx-transfer-from-ie").check()
    final = scenario.step("mtx-status-final").check().stdout
    assert re.search(r"Data Transfer Element 0:Empty", final), final
    assert re.search(r"Data Transfer Element 1:Empty", final), final
    expected = {1: "PRB001L9", 2: None, 3: "PRB003L9", 5: "PRB002L9", 6: "PRB004L9", 7: None}
    for slot, barcode in expected.items():
        if barcode:
            assert re.search(rf"Storage Element {slot}:Full :VolumeTag={barcode}\b", final), final
        else:
            assert re.search(rf"Storage Element {slot}:Empty", final), final
    assert re.search(r"Storage Element 9 IMPORT/EXPORT:Empty", final), final


def test_guest_imports_the_same_pytp_tapeio_as_the_host(scenario: Scenario) -> None:
    lines = scenario.step("python-import").check().stdout.splitlines()
    spec = importlib.util.find_spec("pytp.tapeio")
    assert spec is not None and spec.origin is not None
    assert lines[0] == str(Path(spec.origin).resolve())
    assert Path(lines[0]).is_relative_to(harness.repo_root()), (
        f"the guest imports pytp from {lines[0]}, not from this checkout {harness.repo_root()}"
    )
    # DESIGN: commands that do not need the catalog must not import it (or
    # click): under emulation sqlmodel + alembic cost 10-20 s.
    assert lines[1:] in ([], [""]), f"pytp.tapeio pulled in: {lines[1:]}"


# -- the harness itself ------------------------------------------------------


def test_script_status_output_env_and_cwd_come_back(guest_image: harness.GuestImage, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = harness.run_in_guest(
        guest_image,
        None,
        'echo "out $FOO"; echo err >&2; pwd; step s1 sh -c "echo one; exit 4"; '
        'echo file > "$PYTP_TEST_OUT/f"; echo "tapes=[$PYTP_TEST_TAPES]"; exit 7',
        env={"FOO": "bar baz"},
        cwd=cwd,
        workdir=tmp_path / "jobs",
        timeout=120,
    )
    assert result.exit_code == 7
    assert result.stdout.splitlines() == ["out bar baz", str(cwd.resolve()), "tapes=[]"]
    assert result.stderr == "err\n"
    assert result.steps["s1"].exit_code == 4
    assert result.steps["s1"].stdout == "one\n"
    assert (result.out_dir / "f").read_text() == "file\n"
    assert result.devices == harness.GuestDevices()
    with pytest.raises(AssertionError, match="exited 7"):
        result.check()


def test_timeout_kills_the_guest(guest_image: harness.GuestImage, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(harness.GuestTimeout) as info:
        harness.run_in_guest(guest_image, None, "sleep 600", timeout=2, workdir=tmp_path)
    assert time.monotonic() - t0 < 15
    assert info.value.result is not None
    assert not [p for p in harness._live if "qemu" in str(p.args[0])], "QEMU still registered as running"


def test_library_spec_rejects_impossible_layouts() -> None:
    with pytest.raises(ValueError, match="slot 9 does not exist"):
        harness.LibrarySpec(slots=8, cartridges=(harness.Cartridge("A1", slot=9),))
    with pytest.raises(ValueError, match="already taken"):
        harness.LibrarySpec(cartridges=(harness.Cartridge("A1", slot=1), harness.Cartridge("A2", slot=1)))
    with pytest.raises(ValueError, match="given twice"):
        harness.LibrarySpec(cartridges=(harness.Cartridge("A1"), harness.Cartridge("A1")))
    with pytest.raises(ValueError, match="without a changer"):
        harness.LibrarySpec(cartridges=(harness.Cartridge("A1", drive=0),))
    with pytest.raises(ValueError, match="barcode"):
        harness.LibrarySpec(cartridges=(harness.Cartridge("../x"),))
