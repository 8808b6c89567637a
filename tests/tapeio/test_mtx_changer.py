"""MtxChanger: the argument lists it runs and how failures become errors.

A tiny fake ``mtx`` placed first on PATH replays a transcript and exits with
a chosen status; it records each call's arguments.  It exercises only the
wrapper: parsing is tested on the transcripts in test_mtx_parse.py, and the
real mtx against a real (tgt) changer runs in the system suite.  Two tests at
the end run the installed mtx itself against nodes that are not changers.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from pytp.tapeio import exitcodes
from pytp.tapeio.changer import Changer
from pytp.tapeio.errors import ChangerError
from pytp.tapeio.mtx import MtxChanger, MtxError
from tests.tapeio.transcripts import fixture

DEVICE = "/dev/sg2"

FAKE_MTX = """#!/bin/sh
# Fake mtx: replays $FAKE_MTX_DIR/<subcommand>.{stdout,stderr,rc}; logs its arguments.
printf '%s\\n' "$*" >> "$FAKE_MTX_DIR/calls.log"
printf '%s\\n' "${LC_ALL-unset}" >> "$FAKE_MTX_DIR/locale.log"
sub="$3"
if [ -f "$FAKE_MTX_DIR/$sub.sleep" ]; then exec sleep "$(cat "$FAKE_MTX_DIR/$sub.sleep")"; fi
[ -f "$FAKE_MTX_DIR/$sub.stdout" ] && cat "$FAKE_MTX_DIR/$sub.stdout"
[ -f "$FAKE_MTX_DIR/$sub.stderr" ] && cat "$FAKE_MTX_DIR/$sub.stderr" >&2
if [ -f "$FAKE_MTX_DIR/$sub.rc" ]; then exit "$(cat "$FAKE_MTX_DIR/$sub.rc")"; fi
exit 0
"""



class FakeMtx:
    """Controls the fake mtx: what each subcommand prints and returns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def answer(self, sub: str, *, stdout: str = "", stderr: str = "", rc: int = 0) -> None:
        (self.folder / f"{sub}.stdout").write_text(stdout)
        (self.folder / f"{sub}.stderr").write_text(stderr)
        (self.folder / f"{sub}.rc").write_text(str(rc))

    def hang(self, sub: str, seconds: int) -> None:
        (self.folder / f"{sub}.sleep").write_text(str(seconds))

    @property
    def calls(self) -> list[str]:
        log = self.folder / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    @property
    def locales(self) -> list[str]:
        return (self.folder / "locale.log").read_text().splitlines()


@pytest.fixture
def fake_mtx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMtx:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "mtx"
    script.write_text(FAKE_MTX)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_MTX_DIR", str(state))
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    return FakeMtx(state)


@pytest.fixture
def changer() -> MtxChanger:
    return MtxChanger(DEVICE, "lib1")


def test_is_a_changer(changer: MtxChanger) -> None:
    assert isinstance(changer, Changer)


def test_status_runs_mtx_status_and_parses(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer("status", stdout=fixture("tgt-vtl--mtx-status-drive0-loaded-from-slot2.txt"))
    status = changer.status()
    assert fake_mtx.calls == [f"-f {DEVICE} status"]
    assert status.drive(0).source_slot == 2
    # mtx's strerror texts are only recognisable in English.
    assert fake_mtx.locales == ["C"]


def test_status_with_request_sense_noise_on_stderr(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    text = fixture("mtx-status--tandberg-storageloader-lto5-1.txt")
    noise, _, status_text = text.partition("Mode sense (0x1A) for Page 0x1D failed\n")
    fake_mtx.answer("status", stdout=status_text, stderr=noise + "Mode sense (0x1A) for Page 0x1D failed\n")
    assert len(changer.status().slots) == 7


def test_load_unload_transfer_argument_lists(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer("load", stdout=fixture("tgt-vtl--mtx-load.txt"))
    fake_mtx.answer("unload", stdout=fixture("tgt-vtl--mtx-unload.txt"))
    fake_mtx.answer("transfer", stdout=fixture("tgt-vtl--mtx-transfer.txt"))
    changer.load(2, 0)
    changer.unload(2, 0)
    changer.transfer(3, 10)
    assert fake_mtx.calls == [
        f"-f {DEVICE} load 2 0",
        f"-f {DEVICE} unload 2 0",
        f"-f {DEVICE} transfer 3 10",
    ]


def test_failed_load_is_a_changer_error_that_keeps_the_output(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    transcript = fixture("tgt-vtl--mtx-error-load-empty-slot.txt")
    fake_mtx.answer("load", stdout="Loading media from Storage Element 9 into drive 1...",
                    stderr="Source Element Address 1008 is Empty\n", rc=1)
    with pytest.raises(MtxError) as caught:
        changer.load(9, 1)
    err = caught.value
    assert isinstance(err, ChangerError)
    assert err.exit_code == exitcodes.EXIT_CHANGER
    assert err.kind == "source-empty"
    assert err.returncode == 1
    assert str(err).startswith(f"mtx load 9 1 on library lib1 ({DEVICE}) failed: There is no tape")
    assert err.stderr == "Source Element Address 1008 is Empty\n"
    assert (err.stdout + err.stderr).strip() == transcript.strip()
    assert err.command[1:] == ["-f", DEVICE, "load", "9", "1"]


def test_unload_to_source_slot_reads_status_first(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer("status", stdout=fixture("tgt-vtl--mtx-status-drive0-loaded-from-slot2.txt"))
    fake_mtx.answer("unload", stdout=fixture("tgt-vtl--mtx-unload.txt"))
    changer.unload(None, 0)
    assert fake_mtx.calls == [f"-f {DEVICE} status", f"-f {DEVICE} unload 2 0"]


def test_unload_with_unknown_source_is_refused(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer(
        "status",
        stdout=(
            "  Storage Changer /dev/sg2:1 Drives, 2 Slots ( 0 Import/Export )\n"
            "Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = ABC001L9\n"
            "      Storage Element 1:Empty\n"
            "      Storage Element 2:Empty\n"
        ),
    )
    with pytest.raises(ChangerError, match=r"does not know which slot .* Name an empty slot"):
        changer.unload(None, 0)
    assert fake_mtx.calls == [f"-f {DEVICE} status"]


def test_unload_when_source_slot_is_now_full_is_refused(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer(
        "status",
        stdout=(
            "  Storage Changer /dev/sg2:1 Drives, 2 Slots ( 0 Import/Export )\n"
            "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = ABC001L9\n"
            "      Storage Element 1:Full :VolumeTag=ABC002L9\n"
            "      Storage Element 2:Empty\n"
        ),
    )
    with pytest.raises(ChangerError, match="came from slot 1, which now holds ABC002L9"):
        changer.unload(None, 0)
    assert fake_mtx.calls == [f"-f {DEVICE} status"]


def test_unload_of_empty_drive_is_refused(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer("status", stdout=fixture("tgt-vtl--mtx-status-drive0-loaded-from-slot2.txt"))
    with pytest.raises(ChangerError, match="Drive 1 of library lib1 is empty"):
        changer.unload(None, 1)
    with pytest.raises(ChangerError, match="has no drive 5"):
        changer.unload(None, 5)


def test_bad_numbers_never_reach_mtx(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    with pytest.raises(ChangerError, match="slots are numbered from 1"):
        changer.load(0, 0)
    with pytest.raises(ChangerError, match="drives are numbered from 0"):
        changer.load(1, -1)
    with pytest.raises(ChangerError, match="slots are numbered from 1"):
        changer.transfer(1, 0)
    assert fake_mtx.calls == []


def test_offline_library_status_failure(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer(
        "status", stderr=fixture("mtx-error--ibm-33614lx-offline-read-element-status-failed.txt"), rc=1
    )
    with pytest.raises(MtxError, match=r"READ ELEMENT STATUS failed.*offline") as caught:
        changer.status()
    assert caught.value.kind == "element-status-failed"
    assert "Sense Key=Not Ready" in caught.value.output


def test_unparsable_status_keeps_the_output(fake_mtx: FakeMtx, changer: MtxChanger) -> None:
    fake_mtx.answer("status", stdout="mtx version 1.3.12\n")
    with pytest.raises(MtxError, match="printed no changer status") as caught:
        changer.status()
    assert caught.value.kind == "unparsable-status"
    assert caught.value.stdout == "mtx version 1.3.12\n"


def test_hanging_mtx_is_stopped(fake_mtx: FakeMtx) -> None:
    fake_mtx.hang("load", 30)
    with pytest.raises(MtxError, match=r"did not finish within 0.5 s") as caught:
        MtxChanger(DEVICE, "lib1", timeout=0.5).load(1, 0)
    assert caught.value.returncode is None
    assert caught.value.kind == "timeout"


def test_missing_mtx_program() -> None:
    with pytest.raises(ChangerError, match=r"'mtx-not-installed' program is not installed.*apt install mtx"):
        MtxChanger(DEVICE, "lib1", mtx="mtx-not-installed").status()


# --- the installed mtx, against nodes that are not changers ---------------------------


@pytest.fixture
def real_mtx() -> str:
    program = shutil.which("mtx", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if program is None:
        pytest.skip("the mtx package is not installed (apt install mtx)")
    return program


def test_real_mtx_on_missing_device(real_mtx: str, tmp_path: Path) -> None:
    missing = tmp_path / "sg99"
    with pytest.raises(MtxError, match=r"does not exist.*lsscsi -g") as caught:
        MtxChanger(missing, "lib1", mtx=real_mtx).status()
    assert caught.value.kind == "no-device"
    assert f"cannot open SCSI device '{missing}' - No such file or directory" in caught.value.output


def test_real_mtx_on_a_node_that_is_not_sg(real_mtx: str) -> None:
    with pytest.raises(MtxError, match="not a SCSI generic device") as caught:
        MtxChanger("/dev/null", "lib1", mtx=real_mtx).status()
    assert caught.value.kind == "not-a-changer-device"
