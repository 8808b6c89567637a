"""``pytp vault export|import|list|report`` (issue 11, part 1) on the virtual library at the
default 512 KiB blocks: real backups, a real SQLite catalog, real GNU tar.

The library of ``write_library_config``: two drives, storage slots 1-6 with
tapes PYT001L9-PYT004L9 in slots 1-4, and one import/export (mail) slot, 7.
An operator taking a cartridge out of the mail slot or putting one in is
``virtual_changer.take_out`` / ``put_in``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pytp.catalog.database import open_catalog
from pytp.catalog.models import CleaningCartridge
from pytp.catalog.vault import LIST_FIELDS
from pytp.catalog.vault_report import REPORT_FIELDS
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_changer import VirtualChanger, add_tape, put_in, take_out
from tests.cli.runner import invoke
from tests.conftest import write_library_config

BLOCK = 512 << 10
MAIL = 7


def _site(tmp_path: Path, sqlite_url: str) -> tuple[Path, Path]:
    """The configuration file and the library directory."""
    config = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    return config, tmp_path / "site" / "lib"


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    return root


def _tapes(config: Path) -> dict[str, dict]:
    return {r["label"]: r for r in json.loads(invoke(config, "tapes", "--format", "json").stdout) if r["label"]}


def _slots(library: Path) -> dict[int, str | None]:
    return {s.number: s.barcode for s in VirtualChanger(library).status().slots}


def _zoned(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


def _into_drive(config: Path, label: str) -> str:
    """Make sure ``label`` is in a drive (jobs may put their tape back: --keep-loaded); return the drive."""
    tape = _tapes(config)[label]
    if tape["drive"] is None:
        invoke(config, "load", str(tape["slot"]))
        tape = _tapes(config)[label]
    assert tape["drive"] is not None, tape
    return str(tape["drive"])


def _unload_all(library: Path) -> None:
    """Every drive's tape back into the slot it came from (whatever the last command left)."""
    changer = VirtualChanger(library)
    for drive in changer.status().drives:
        if drive.full:
            changer.unload(None, drive.index)


def _import(config: Path, expect: int = 0) -> list[dict]:
    return json.loads(invoke(config, "vault", "import", "--format", "json", expect=expect).stdout)


def test_export_from_a_drive_to_a_vault_and_import_back(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    src = _tree(tmp_path / "src")
    invoke(config, "backup", str(src), "--job", "first")
    (label,) = _tapes(config)
    _into_drive(config, label)

    out = invoke(config, "vault", "export", label, "--to", "offsite-A").stdout
    assert f"is in import/export slot {MAIL} of library lib: take it out for vault offsite-A" in out
    assert "unloaded from drive" in out
    assert _slots(library)[MAIL] == label
    assert not any(d.full for d in VirtualChanger(library).status().drives)
    # Exported but still waiting in the mail slot: the changer's truth is shown.
    assert _tapes(config)[label]["location"] == f"lib:slot {MAIL}"
    (row,) = json.loads(invoke(config, "vault", "list", "--format", "json").stdout)
    assert list(row) == list(LIST_FIELDS)
    assert row["vault"] == "offsite-A" and row["label"] == label and row["waiting_in"] == f"lib:slot {MAIL}"
    assert row["due_back"] is False
    _zoned(row["since"])
    _zoned(row["retention_end"])

    take_out(library, MAIL)
    assert _tapes(config)[label]["location"] == "vault offsite-A"
    assert json.loads(invoke(config, "vault", "list", "--format", "json").stdout)[0]["waiting_in"] is None
    assert "offsite-A" in invoke(config, "vault", "list").stdout
    # A restore says where the tape is.
    refused = invoke(config, "restore", str(tmp_path / "out"), "--job", "1", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "in vault offsite-A" in refused.stderr and "pytp vault import" in refused.stderr
    refused = invoke(config, "verify", "--job", "1", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "in vault offsite-A" in refused.stderr and "pytp vault import" in refused.stderr
    # Backups never pick it (it is not in the library): the next job labels a blank.
    invoke(config, "backup", str(src), "--job", "second")
    jobs = {j["name"]: j for j in json.loads(invoke(config, "jobs", "--format", "json").stdout)}
    assert jobs["second"]["tapes"] and label not in jobs["second"]["tapes"]

    assert put_in(library, label) == MAIL
    (found,) = _import(config)
    assert found["result"] == "back" and found["label"] == label and found["vault"] == "offsite-A"
    assert found["mail_slot"] == MAIL and _slots(library)[found["slot"]] == label and _slots(library)[MAIL] is None
    assert invoke(config, "vault", "list").stdout.strip() == "No tape is in a vault."
    assert _tapes(config)[label]["location"] == f"lib:slot {found['slot']}"
    invoke(config, "restore", str(tmp_path / "out"), "--job", "1")
    assert (tmp_path / "out" / str(src).lstrip("/") / "a.txt").read_text() == "alpha\n"


def test_export_of_a_tape_in_a_slot_csv_and_idempotent_after_a_cut(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    invoke(config, "label", "--barcode", "PYT002L9")
    _unload_all(library)
    exported = invoke(config, "vault", "export", "PYT002L9", "--to", "bank", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert rows[0]["mail_slot"] == str(MAIL) and rows[0]["unloaded_from"] == "" and rows[0]["vault"] == "bank"
    # Run again (say the first run was killed after the move): the tape is found in the mail slot.
    again = json.loads(invoke(config, "vault", "export", "PYT002L9", "--to", "bank", "--format", "json").stdout)
    assert again[0]["mail_slot"] == MAIL and _slots(library)[MAIL] == "PYT002L9"


def test_export_refusals_move_and_record_nothing(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    invoke(config, "label", "--barcode", "PYT001L9")
    _unload_all(library)
    invoke(config, "label", "--barcode", "PYT002L9")
    _into_drive(config, "PYT002L9")
    before = _slots(library)

    # An unknown name: nothing moves, even for the known tape named with it.
    err = invoke(config, "vault", "export", "PYT001L9", "NOSUCH", "--to", "v", expect=exitcodes.EXIT_NOT_FOUND).stderr
    assert "Error: No tape labelled 'NOSUCH' in the catalog" in err
    assert _slots(library) == before
    # A hostile vault name.
    err = invoke(config, "vault", "export", "PYT001L9", "--to", "a\x1bb", expect=exitcodes.EXIT_USAGE).stderr
    assert "Error: Invalid vault name" in err

    # Both exported while one mail slot is free: the first goes, the second is refused and not recorded.
    result = invoke(config, "vault", "export", "PYT001L9", "PYT002L9", "--to", "v", expect=exitcodes.EXIT_CHANGER)
    assert "Tape PYT001L9 (PYT001L9) is in import/export slot 7" in result.stdout
    assert "Error: Library lib has no empty import/export slot for PYT002L9" in result.stderr
    rows = json.loads(invoke(config, "vault", "list", "--format", "json").stdout)
    assert [r["label"] for r in rows] == ["PYT001L9"]
    # PYT002L9 stayed in its drive: with no mail slot free it was not even unloaded.
    assert _tapes(config)["PYT002L9"]["location"].startswith("lib:drive")


def test_export_refuses_a_tape_in_a_drive_a_running_pytp_holds(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    invoke(config, "label", "--barcode", "PYT001L9")
    drive = _into_drive(config, "PYT001L9")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from pytp.catalog.config import read_config\n"
            "from pytp.catalog.devices import drive_lock\n"
            f"config = read_config(Path({str(config)!r}), '--config')\n"
            f"with drive_lock(config.drive({drive!r})):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        err = invoke(config, "vault", "export", "PYT001L9", "--to", "v", expect=exitcodes.EXIT_DRIVE).stderr
        assert f"Error: Tape PYT001L9 is in drive {drive}, which a running pytp holds (pid {holder.pid} (" in err
        assert "export it when that job is done." in err
        assert _slots(library)[MAIL] is None
        assert invoke(config, "vault", "list").stdout.strip() == "No tape is in a vault."
    finally:
        holder.communicate("", timeout=30)
    invoke(config, "vault", "export", "PYT001L9", "--to", "v")  # free now
    assert _slots(library)[MAIL] == "PYT001L9"


def test_import_sorts_blank_cleaning_unknown_and_foreign_cartridges(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    assert invoke(config, "vault", "import").stdout.strip() == "No cartridges were taken from the import/export slots."

    add_tape(library, "NEW001L9", MAIL)
    invoke(config, "load", "1", "--drive", "d0")
    (blank,) = _import(config)
    assert blank["result"] == "blank" and blank["barcode"] == "NEW001L9" and blank["slot"] == 5
    assert _slots(library)[5] == "NEW001L9"
    # The label was read in d0, and the tape d0 held is back in it.
    assert VirtualChanger(library).status().drive(0).barcode == "PYT001L9"  # type: ignore[union-attr]
    _unload_all(library)

    add_tape(library, "CLN001L1", MAIL)
    (cleaning,) = _import(config)
    assert cleaning["result"] == "cleaning" and cleaning["slot"] == 6 and _slots(library)[6] == "CLN001L1"
    assert VirtualChanger(library).cleaning_uses() == {}  # not loaded to look
    assert cleaning["note"] == "cleaning cartridge, 0 of 50 uses"
    with Session(open_catalog(json.loads(config.read_text())["catalog"]["url"])) as session:
        assert [c.barcode for c in session.exec(select(CleaningCartridge)).all()] == ["CLN001L1"]

    # A tape labelled by another catalog (another site) on this library.
    other = tmp_path / "other.json"
    document = json.loads(config.read_text())
    document["catalog"]["url"] = f"sqlite:///{tmp_path / 'other.db'}"
    other.write_text(json.dumps(document))
    invoke(other, "label", "--barcode", "PYT004L9")
    _unload_all(library)
    invoke(config, "move", "4", str(MAIL))
    (unknown,) = _import(config)
    assert unknown["result"] == "unknown" and unknown["label"] == "PYT004L9" and unknown["slot"] == 4
    assert "pytp catalog rebuild --tape PYT004L9" in unknown["note"]

    # Data pytp did not write.
    invoke(config, "move", "3", str(MAIL))
    changer = VirtualChanger(library)
    changer.load(MAIL, 0)
    from pytp.tapeio.virtual_drive import VirtualDrive

    drive = VirtualDrive(changer.drive_path(0))
    drive.rewind()
    drive.set_block_size(BLOCK)
    drive.write(b"not a pytp label".ljust(BLOCK, b"\0"))
    drive.close()
    changer.unload(MAIL, 0)
    (foreign,) = _import(config)
    assert foreign["result"] == "foreign" and foreign["barcode"] == "PYT003L9"
    assert json.loads(invoke(config, "tapes", "--format", "json").stdout)  # still lists fine


def test_import_distrusts_a_label_written_for_another_barcode(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    invoke(config, "label", "--barcode", "PYT001L9")
    invoke(config, "vault", "export", "PYT001L9", "--to", "offsite-A")
    take_out(library, MAIL)
    # The hostile twin: PYT001L9's bytes in a cartridge whose barcode says EVL001L9.
    twin = library / "tapes" / "EVL001L9"
    shutil.copytree(library / "tapes" / "PYT001L9", twin)
    meta = json.loads((twin / "tape.json").read_text())
    meta["barcode"] = "EVL001L9"
    (twin / "tape.json").write_text(json.dumps(meta))
    put_in(library, "EVL001L9")
    (found,) = _import(config)
    assert found["result"] == "mismatch" and found["barcode"] == "EVL001L9"
    assert "written for barcode PYT001L9" in found["note"] and "not trusted" in found["note"]
    rows = json.loads(invoke(config, "vault", "list", "--format", "json").stdout)
    assert [(r["label"], r["vault"]) for r in rows] == [("PYT001L9", "offsite-A")]  # still in its vault


def test_import_finds_an_exported_tape_put_straight_into_a_storage_slot(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    invoke(config, "label", "--barcode", "PYT001L9")
    invoke(config, "vault", "export", "PYT001L9", "--to", "offsite-A")
    invoke(config, "move", str(MAIL), "5")  # or an import killed between its move and the label read
    (found,) = _import(config)
    assert (found["mail_slot"], found["slot"], found["result"], found["vault"]) == (None, 5, "back", "offsite-A")
    assert invoke(config, "vault", "list").stdout.strip() == "No tape is in a vault."


def test_import_stops_when_no_storage_slot_is_free(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    add_tape(library, "FIL005L9", 5)
    add_tape(library, "FIL006L9", 6)
    add_tape(library, "NEW001L9", MAIL)
    err = invoke(config, "vault", "import", expect=exitcodes.EXIT_CHANGER).stderr
    assert "Error: No empty storage slot in library lib for the cartridge in import/export slot 7" in err
    assert _slots(library)[MAIL] == "NEW001L9"


def test_vault_report_copies_and_tapes_due_back(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    src = _tree(tmp_path / "src")
    invoke(config, "backup", str(src), "--job", "nightly")
    (label,) = _tapes(config)
    rows = json.loads(invoke(config, "vault", "report", "--format", "json").stdout)
    assert all(list(r) == list(REPORT_FIELDS) for r in rows)
    assert [(r["problem"], r["job"], r["copies"], r["places"]) for r in rows] == [
        ("too few copies", 1, 1, ["library lib"])
    ]
    assert invoke(config, "vault", "report", "--copies", "1").stdout.strip().startswith("Nothing to report")
    as_csv = list(csv.DictReader(io.StringIO(invoke(config, "vault", "report", "--format", "csv").stdout)))
    assert list(as_csv[0]) == list(REPORT_FIELDS) and as_csv[0]["tape"] == label

    invoke(config, "vault", "export", label, "--to", "offsite-A")
    take_out(library, MAIL)
    # Past retention: its job needs no copy any more, and the tape is due back.
    invoke(config, "pools", "edit", "default", "--retention-days", "0")
    rows = json.loads(invoke(config, "vault", "report", "--format", "json").stdout)
    assert [(r["problem"], r["tape"], r["vault"]) for r in rows] == [("due back", label, "offsite-A")]
    _zoned(rows[0]["detail"].removeprefix("retention ended "))
    assert json.loads(invoke(config, "vault", "list", "--format", "json").stdout)[0]["due_back"] is True
    invoke(config, "vault", "report", "--copies", "0", expect=exitcodes.EXIT_USAGE)


@pytest.mark.parametrize("command", ["export", "import", "list", "report"])
def test_vault_commands_have_help_with_an_example(tmp_path: Path, sqlite_url: str, command: str) -> None:
    config, _ = _site(tmp_path, sqlite_url)
    assert "Example:" in invoke(config, "vault", command, "--help").stdout


def test_export_from_a_library_without_mail_slots_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config, library = _site(tmp_path, sqlite_url)
    document = json.loads((library / "library.json").read_text())
    del document["slots"][str(MAIL)]
    document["import_export"] = []
    (library / "library.json").write_text(json.dumps(document))
    invoke(config, "label", "--barcode", "PYT001L9")
    err = invoke(config, "vault", "export", "PYT001L9", "--to", "v", expect=exitcodes.EXIT_CHANGER).stderr
    assert "Error: Library lib has no import/export slots: pytp cannot hand PYT001L9 out." in err
    assert invoke(config, "vault", "list").stdout.strip() == "No tape is in a vault."
    err = invoke(config, "vault", "export", "PYT001L9", "--to", "v", "-l", "nosuch", expect=exitcodes.EXIT_CONFIG)
    assert "Unknown library 'nosuch'" in err.stderr
