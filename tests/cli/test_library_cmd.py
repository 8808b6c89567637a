"""`pytp library add-virtual`: every virtual library gets its own barcodes, and a clash with
barcodes the catalog or another library already has is refused when the library is made."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from click.testing import CliRunner

from pytp.catalog.config import read_config
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from pytp.tapeio.virtual_changer import derive_barcode_prefix
from tests.cli.runner import invoke
from tests.conftest import write_library_config

LTO = re.compile(r"[A-Z]{3}[0-9]{3}L9")


def pytp(config: Path | None, *args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    prefix = ["--config", str(config)] if config else []
    result = CliRunner().invoke(cli, [*prefix, *args])
    assert result.exit_code == expect, (result.output, result.stderr)
    return result


def barcodes(config: Path | None, library: str) -> list[str]:
    rows = json.loads(pytp(config, "list", "-l", library, "--format", "json").stdout)
    return [r["barcode"] for r in rows if r["barcode"]]


def test_two_libraries_named_alike_get_their_own_barcodes(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    for name in ("hosta", "hostb"):
        out = pytp(config, "library", "add-virtual", name, "--slots", "3", "--tape-size", "64M").stdout
        assert re.search(r"barcodes (?P<p>H[A-Z]{2})001L9 to (?P=p)003L9\.$", out.strip()), out
    a, b = barcodes(config, "hosta"), barcodes(config, "hostb")
    assert len(a) == len(b) == 3 and not set(a) & set(b)
    assert all(LTO.fullmatch(code) and code.startswith("H") for code in a + b)


def test_the_embedded_default_has_barcodes_of_its_own(source_tree: Path) -> None:
    codes = barcodes(None, "vlib")
    assert len(codes) == 8 and all(LTO.fullmatch(c) and c.startswith("V") for c in codes)
    assert not any(c.startswith("PYT") for c in codes)  # not the same cartridges on every host
    out = pytp(None, "backup", str(source_tree / "docs")).stdout
    assert f"on tape {codes[0]}" in out


def test_a_prefix_clashing_with_another_library_is_refused_at_once(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)  # library "lib": PYT001L9..PYT004L9
    before = config.read_text()
    result = pytp(config, "library", "add-virtual", "copy", "--path", str(tmp_path / "copy"),
                  "--barcode-prefix", "pyt", expect=exitcodes.EXIT_CONFIG)
    assert "Error: Barcode prefix PYT would create tapes that already exist: PYT001L9 (in library lib)" in result.stderr
    assert "choose another --barcode-prefix" in result.stderr
    assert config.read_text() == before and not (tmp_path / "copy").exists()
    result = pytp(config, "library", "add-virtual", "bad", "--barcode-prefix", "AB-1", expect=exitcodes.EXIT_CONFIG)
    assert "Invalid barcode prefix 'AB-1'" in result.stderr and "Traceback" not in result.output


def test_barcodes_known_to_a_shared_catalog_are_refused_or_avoided(
    tmp_path: Path, catalog_url: str, source_tree: Path
) -> None:
    """Host A labelled tapes in the shared catalog; host B's new library must not repeat them."""
    host_a = write_library_config(tmp_path / "a", catalog_url)
    b_dir = tmp_path / "b-lib"
    taken = derive_barcode_prefix("hostb", b_dir)  # what B would get on its own, made A's on purpose
    pytp(host_a, "library", "add-virtual", "shelf", "--path", str(tmp_path / "shelf"), "--slots", "2",
         "--tape-size", "64M", "--block-size", "64K", "--barcode-prefix", taken)
    pytp(host_a, "backup", str(source_tree / "docs"), "-l", "shelf")  # labels <taken>001L9 in the catalog
    os.rename(tmp_path / "shelf", tmp_path / "shelf-elsewhere")  # B cannot see A's library, only the catalog

    host_b = tmp_path / "b" / "config.json"
    host_b.parent.mkdir()
    host_b.write_text(json.dumps({"catalog": {"url": catalog_url}}))
    result = pytp(host_b, "library", "add-virtual", "hostb", "--path", str(tmp_path / "other"),
                  "--barcode-prefix", taken, expect=exitcodes.EXIT_CONFIG)
    assert f"{taken}001L9 (in the catalog)" in result.stderr
    assert f"{taken}002L9" not in result.stderr  # never labelled: unknown to the catalog

    pytp(host_b, "library", "add-virtual", "hostb", "--path", str(b_dir), "--tape-size", "64M")
    codes = barcodes(host_b, "hostb")
    assert codes and all(LTO.fullmatch(c) and c.startswith("H") and not c.startswith(taken) for c in codes)


def test_library_list_load_unload_move(run) -> None:
    rows = json.loads(run("list", "--format", "json").stdout)
    assert rows[0]["full"] is False
    run("load", "2", "-d", "d1")
    rows = json.loads(run("list", "--format", "json").stdout)
    assert rows[1]["full"] is True and rows[1]["source_slot"] == 2
    run("unload", "-d", "d1")
    run("move", "3", "5")
    rows = {r["element"]: r for r in json.loads(run("list", "--format", "json").stdout)}
    assert rows["slot 5"]["full"] and not rows["slot 3"]["full"]


def test_library_add_virtual_and_use_it(tmp_path: Path, sqlite_url: str, source_tree: Path) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    out = invoke(
        config,
        "library",
        "add-virtual",
        "small",
        "--path",
        str(tmp_path / "small"),
        "--drives",
        "1",
        "--slots",
        "3",
        "--tapes",
        "2",
        "--tape-size",
        "32M",
        "--block-size",
        "64K",
    ).stdout
    assert "Created virtual library 'small'" in out
    parsed = read_config(config, "x")
    assert parsed.library("small").drives == ("small-drive0",)
    assert parsed.drive("small-drive0").block_size == 65536
    rows = json.loads(invoke(config, "list", "-l", "small", "--format", "json").stdout)
    barcodes = [r["barcode"] for r in rows if r["full"]]
    prefix = barcodes[0][:3]  # "S" for small, then two letters unique to this host and library
    assert re.fullmatch(r"S[A-Z]{2}", prefix) and barcodes == [f"{prefix}001L9", f"{prefix}002L9"]
    assert f"on tape {prefix}001L9" in invoke(config, "backup", str(source_tree / "docs"), "-l", "small").stdout
    invoke(config, "library", "add-virtual", "small", expect=exitcodes.EXIT_CONFIG)
    # a restore that looks in the first library is told where the tape is, and how to say so
    failed = invoke(config, "restore", str(tmp_path / "out"), "--job", "1", expect=exitcodes.EXIT_WRONG_TAPE)
    assert "is in library small, not in" in failed.stderr and "-l small" in failed.stderr, failed.stderr
    invoke(config, "restore", str(tmp_path / "out"), "--job", "1", "-l", "small")
    assert (tmp_path / "out" / str(source_tree / "docs" / "report.txt").lstrip("/")).exists()


def test_move_cartridge_carries_a_tape_into_another_librarys_import_export_slot(
    tmp_path: Path, sqlite_url: str
) -> None:
    from pytp.tapeio.virtual_changer import create_virtual_library

    config = write_library_config(tmp_path / "site", sqlite_url, drives=1)  # library "lib": PYT001L9..PYT004L9
    other = create_virtual_library(tmp_path / "other", "other", drives=1, slots=2, tapes=0, import_export=1,
                                   barcode_prefix="OTH")
    assert "Moved cartridge PYT002L9 to import/export slot 3" in pytp(
        config, "library", "move-cartridge", "PYT002L9", "--to", str(other)).stdout
    assert "PYT002L9" not in barcodes(config, "lib")
    assert (other / "tapes" / "PYT002L9" / "tape.json").is_file()
    # The one import/export slot is full now; a tape in a drive must be unloaded first.
    full = pytp(config, "library", "move-cartridge", "PYT003L9", "--to", str(other), expect=exitcodes.EXIT_CHANGER)
    assert "has no empty import/export slot" in full.stderr
    pytp(config, "load", "1")
    loaded = pytp(config, "library", "move-cartridge", "PYT001L9", "--to", str(other), expect=exitcodes.EXIT_CHANGER)
    assert "is in a drive" in loaded.stderr
    nowhere = pytp(config, "library", "move-cartridge", "PYT003L9", "--to", "nosuch", expect=exitcodes.EXIT_CONFIG)
    assert "neither a virtual library" in nowhere.stderr
