"""Planned restores: each tape loaded once, in the order the plan prints."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_drive import read_counters
from tests.conftest import write_library_config


def test_restore_from_three_tapes_loads_each_once_in_plan_order(tmp_path: Path, sqlite_url: str) -> None:
    pools = [{"name": "default"}, {"name": "b"}, {"name": "c"}]
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=4, pools=pools)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    sources = {}
    for pool in ("default", "b", "c"):
        src = tmp_path / f"src-{pool}"
        src.mkdir()
        for i in range(5):
            (src / f"wanted-{pool}-{i}.txt").write_text(f"{pool} {i}\n" * 1000)
        (src / "other.txt").write_text("not wanted")
        run("backup", str(src), "--pool", pool, "-d", "d0", "--keep-loaded")
        sources[pool] = src
    tapes = {
        t["pool"]: t["label"] for t in json.loads(run("tapes", "--format", "json").stdout) if t["label"]
    }  # not the blanks
    assert len(set(tapes.values())) == 3

    plan = run("restore", str(tmp_path / "out"), "--match", "wanted-", "--plan", "-d", "d0").stdout.splitlines()
    assert plan[0].startswith("15 member(s) from 3 tape(s): 2 load(s)")
    order = [line.split()[2] for line in plan if line[:2] in ("1.", "2.", "3.")]
    assert sorted(order) == sorted(tapes.values())
    assert "drive (loaded)" in plan[1]  # the tape in the drive comes first: no load for it
    assert not (tmp_path / "out").exists()  # --plan touched nothing

    before = read_counters(tmp_path / "site" / "lib" / "drives" / "0")
    out = run("restore", str(tmp_path / "out"), "--match", "wanted-", "-d", "d0").stdout
    after = read_counters(tmp_path / "site" / "lib" / "drives" / "0")
    # Two loads for the two tapes not in the drive, one more to put back the tape
    # the restore found there (a restore leaves the library as it found it).
    assert after.loads - before.loads == 3
    assert f"from tape {', '.join(order)}" in out
    for pool, src in sources.items():
        restored = tmp_path / "out" / str(src).lstrip("/")
        assert sorted(p.name for p in restored.iterdir()) == [f"wanted-{pool}-{i}.txt" for i in range(5)]


def test_a_restore_needing_a_tape_outside_the_library_lists_it(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url, tapes=2)

    def run(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output
        return result

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    run("backup", str(src), "-d", "d0", "--keep-loaded")
    run("unload", "-d", "d0")
    run("move", "1", "7")  # the mail slot...
    lib = json.loads((tmp_path / "site" / "lib" / "library.json").read_text())
    lib["slots"]["7"] = None  # ...and the operator took the cartridge out
    (tmp_path / "site" / "lib" / "library.json").write_text(json.dumps(lib))
    plan = run("restore", str(tmp_path / "out"), "--match", "a.txt", "--plan").stdout
    assert "missing: insert tape PYT001L9 (barcode PYT001L9) into the library" in plan
    r = run("restore", str(tmp_path / "out"), "--match", "a.txt", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "not in library lib: PYT001L9" in r.stderr
