"""Two hosts, one PostgreSQL catalog (issue 9), end to end with real processes.

"host A" and "host B" are two configurations on this machine, each with its
own virtual library, told apart by ``PYTP_HOSTNAME`` (read only by
``pytp.tapeio.procinfo.host_name``).  Both libraries hold a cartridge with the
same barcode ``DUP001L9`` in slot 1: the two first backups, started together
on an empty database, race to label it.  One host gets it; the other must
take its next blank, with no traceback and no label on tape that the catalog
does not know.  Then each host's tape is carried into the other's
import/export slot with ``pytp library move-cartridge``, each host finds and
restores the other's files with ``--host``, the borrowed tape goes back to
its slot, and incremental chains stay per host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pytp.tapeio.virtual_changer import add_tape, create_virtual_library

HOSTS = {"A": "hosta", "B": "hostb"}
PYTP = [sys.executable, "-c", "from pytp.cli.main import main; main()"]


def _config(root: Path, name: str, prefix: str, url: str) -> Path:
    library = root / "lib"
    create_virtual_library(library, f"lib{name}", drives=1, slots=4, tapes=2, tape_size=64 << 20,
                           import_export=1, barcode_prefix=prefix)
    add_tape(library, "DUP001L9", 3)  # a duplicate barcode: the other library has one too
    _swap_slots(library, 1, 3)  # the duplicate is the first blank either host tries
    config = {
        "tar_dir": str(root / "tars"),
        "snapshot_dir": str(root / "snapshots"),
        "catalog": {"url": url},
        "pools": [{"name": "default", "retention_days": 30}],
        "tape_drives": [
            {"name": "d0", "device_path": str(library / "drives" / "0"), "block_size": 64 << 10, "type": "virtual"}
        ],
        "tape_libraries": [
            {"name": f"lib{name}", "device_path": str(library), "slots": 4, "drives": ["d0"], "type": "virtual"}
        ],
    }
    path = root / "config.json"
    path.write_text(json.dumps(config))
    return path


def _swap_slots(library: Path, a: int, b: int) -> None:
    """Test set-up only: reorder two cartridges of a fresh library (``pytp move`` needs an empty slot)."""
    from pytp.tapeio.virtual_changer import VirtualChanger

    changer = VirtualChanger(library)
    changer.transfer(a, 4)
    changer.transfer(b, a)
    changer.transfer(4, b)


def _env(host: str) -> dict[str, str]:
    # Two machines: each its own name and its own data directory (drive locks, default paths).
    data = Path(os.environ["XDG_DATA_HOME"]) / host
    return {**os.environ, "PYTP_HOSTNAME": HOSTS[host], "XDG_DATA_HOME": str(data)}


def _start(config: Path, host: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*PYTP, "--config", str(config), *args], env=_env(host),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(config: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PYTP, "--config", str(config), *args], env=_env(host),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def _json(config: Path, host: str, *args: str) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(_run(config, host, *args, "--format", "json").stdout)


def test_a_chain_is_per_host(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """B's incremental of a path only A backed up in full has no base: it is a full backup (issue 9)."""
    from click.testing import CliRunner

    from pytp.cli.main import cli
    from tests.conftest import write_library_config

    config = write_library_config(tmp_path / "site", sqlite_url)
    source = tmp_path / "etc"
    source.mkdir()
    (source / "hostname").write_text("a\n")

    def pytp(host: str, *args: str) -> str:
        monkeypatch.setenv("PYTP_HOSTNAME", host)
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    pytp("hosta", "backup", str(source))
    assert "ok (full)" in pytp("hostb", "backup", "--incremental", str(source))  # no full of B's to compare with
    assert "ok (incremental)" in pytp("hosta", "backup", "--incremental", str(source))
    assert [j["host"] for j in json.loads(pytp("hostb", "jobs", "--format", "json"))] == ["hostb"]
    hits = json.loads(pytp("hosta", "search", "hostname", "--format", "json"))
    assert [h["host"] for h in hits] == ["hosta"]


@pytest.mark.postgres
def test_two_hosts_share_one_catalog(tmp_path: Path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    url = postgres_server.new_database()
    configs = {h: _config(tmp_path / h, h, f"HQ{h}", url) for h in HOSTS}
    source = tmp_path / "etc"  # the same path on both "hosts", as /etc would be
    source.mkdir()
    (source / "hostname").write_text("shared\n")
    (source / "passwd").write_text("root:x:0:0\n")

    # Concurrent first start and concurrent labelling: both race for DUP001L9.
    procs = {h: _start(configs[h], h, "backup", str(source)) for h in HOSTS}
    outcome = {h: p.communicate(timeout=300) for h, p in procs.items()}
    for h, p in procs.items():
        assert p.returncode == 0, (h, outcome[h])
        assert "Traceback" not in outcome[h][1]

    engine = create_engine(url)
    with engine.connect() as db:
        volumes = {row.label: row for row in db.execute(text("SELECT label, barcode, library FROM volume"))}
        jobs = {row.host: row.id for row in db.execute(text("SELECT id, host FROM job WHERE status = 'ok'"))}
    engine.dispose()
    assert set(jobs) == set(HOSTS.values())
    assert "DUP001L9" in volumes and len(volumes) == 2  # one host won the duplicate, the other took its own blank
    winner = next(h for h in HOSTS if volumes["DUP001L9"].library == f"lib{h}")
    loser = "B" if winner == "A" else "A"
    (own,) = [label for label in volumes if label.startswith(f"HQ{loser}")]  # its next blank
    assert volumes[own].library == f"lib{loser}"
    # No orphan: the loser's DUP001L9 cartridge got no label (its tape holds no file at all).
    assert not list((tmp_path / loser / "lib" / "tapes" / "DUP001L9").glob("file-*"))
    tape_of = {winner: "DUP001L9", loser: own}

    # Each job shows its host; the default is this host, --host all shows both.
    for h in HOSTS:
        rows = _json(configs[h], h, "jobs")
        assert [r["host"] for r in rows] == [HOSTS[h]]
        assert {r["host"] for r in _json(configs[h], h, "jobs", "--host", "all")} == set(HOSTS.values())

    # Chains stay per host: A's incremental sees the new file, and so does B's
    # (B compares with its own full, not with A's newer incremental).
    (source / "new.txt").write_text("written after the fulls\n")
    counts = {}
    for h in ("A", "B"):
        out = _run(configs[h], h, "backup", "--incremental", str(source)).stdout
        found = re.match(r"Job (\d+) ok \(incremental\): (\d+) files?", out)
        assert found, out
        counts[h] = int(found[2])
        # new.txt is in each host's incremental: B's was not compared with A's newer job
        assert _json(configs[h], h, "search", "new.txt", "--job", found[1])
    assert counts["A"] == counts["B"] > 0

    # Newest version is per host: A finds its own copy of new.txt by default.
    for h in HOSTS:
        hits = _json(configs[h], h, "search", "new.txt")
        assert [r["host"] for r in hits] == [HOSTS[h]]
        both = _json(configs[h], h, "search", "new.txt", "--host", "all")
        assert sorted(r["host"] for r in both) == sorted(HOSTS.values())

    # The loser's blank duplicate goes to a shelf library, then each host's tape
    # (back in its slot after the jobs: nothing to unload) is carried into the
    # other's import/export slot.
    shelf = create_virtual_library(tmp_path / "shelf", "shelf", drives=1, slots=1, tapes=0, import_export=1)
    _run(configs[loser], loser, "library", "move-cartridge", "DUP001L9", "--to", str(shelf))
    for h in HOSTS:
        drives = [r for r in _json(configs[h], h, "list") if r["element"].startswith("drive")]
        assert drives and not any(r["full"] for r in drives), drives
    for h, other in (("A", "B"), ("B", "A")):
        moved = _run(configs[h], h, "library", "move-cartridge", tape_of[h], "--to", str(tmp_path / other / "lib"))
        assert "import/export slot" in moved.stdout

    # Each host restores the other's new.txt from the tape now in its import/export slot.
    for h, other in (("A", "B"), ("B", "A")):
        versions = _json(configs[h], h, "versions", str(source / "new.txt"), "--host", HOSTS[other])
        assert versions and all(v["host"] == HOSTS[other] for v in versions)
        target = tmp_path / f"restored-{h}"
        _run(configs[h], h, "restore", str(target), "--host", HOSTS[other], "--match", "new.txt")
        assert (target / str(source / "new.txt").lstrip("/")).read_text() == "written after the fulls\n"
        # The borrowed tape went back to the import/export slot; the drive is as it was (empty).
        listing = _json(configs[h], h, "list")
        drive = next(r for r in listing if r["element"].startswith("drive"))
        assert not drive["full"], listing
        assert any(r["barcode"] == tape_of[other] and r["element"].startswith("i/e") for r in listing), listing

    # The next backup does not append to the other host's tape.
    for h, other in (("A", "B"), ("B", "A")):
        _run(configs[h], h, "backup", str(source))
        newest = _json(configs[h], h, "jobs")[0]
        assert tape_of[other] not in newest["tapes"], newest


def test_a_restore_puts_a_borrowed_cartridge_back(tmp_path: Path, sqlite_url: str) -> None:
    """The next backup must not append to a tape a restore left in the drive (issue 9)."""
    from click.testing import CliRunner

    from pytp.cli.main import cli
    from tests.conftest import write_library_config

    config = write_library_config(tmp_path / "site", sqlite_url, drives=1)
    source = tmp_path / "etc"
    source.mkdir()
    (source / "hostname").write_text("a\n")

    def pytp(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    pytp("backup", str(source))  # its tape goes back to slot 1
    pytp("load", "2")  # another tape is in the drive when the restore starts
    pytp("restore", str(tmp_path / "out"), "--match", "hostname")
    assert (tmp_path / "out" / str(source / "hostname").lstrip("/")).read_text() == "a\n"
    listing = json.loads(pytp("list", "--format", "json"))
    drive = next(r for r in listing if r["element"].startswith("drive"))
    assert drive["barcode"] == "PYT002L9"  # the tape found in the drive is back in it
    assert next(r for r in listing if r["element"] == "slot 1")["barcode"] == "PYT001L9"


def test_verify_compares_with_this_hosts_backups(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify --against-disk`` and ``verify`` without ``--job`` look at this host's jobs:
    B's disk is not compared with A's files, nor is A's newest job B's (issue 9)."""
    from click.testing import CliRunner

    from pytp.cli.main import cli
    from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED
    from tests.conftest import write_library_config

    config = write_library_config(tmp_path / "site", sqlite_url, block_size=512 << 10)
    source = tmp_path / "etc"
    source.mkdir()

    def pytp(host: str, *args: str, expect: int = 0) -> str:
        monkeypatch.setenv("PYTP_HOSTNAME", host)
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result.stdout

    (source / "hostname").write_text("a\n")
    pytp("hosta", "backup", str(source))  # job 1
    (source / "hostname").write_text("host b\n")
    pytp("hostb", "backup", str(source))  # job 2: the same path, B's content, now on disk
    assert "0 changed" in pytp("hostb", "verify", "--against-disk", str(source))
    changed = pytp("hosta", "verify", "--against-disk", str(source), expect=EXIT_VERIFY_FAILED)
    assert f"changed: {source}/hostname: size 2 → 7" in changed
    assert "0 changed" in pytp("hosta", "verify", "--against-disk", str(source), "--host", "hostb")
    assert json.loads(pytp("hosta", "verify", "--format", "json"))["jobs"] == [1]
    assert json.loads(pytp("hostb", "verify", "--format", "json"))["jobs"] == [2]
