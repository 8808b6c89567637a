"""The configuration is checked strictly: a misspelled key, a value of the wrong
type, a duplicate name or a file that is not UTF-8 is an `Error: …` with exit 4
that names the file and the key, never a traceback or a silently ignored
setting (issue 8, defect 11) — and every file the original pytp read still works."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pytp.catalog.config import read_config
from pytp.catalog.errors import ConfigError
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config

#: The original pytp's configs/config.json (ORIGINAL.md, section 2), key for key.
ORIGINAL_CONFIG: dict[str, Any] = {
    "tar_dir": "/data-intern/Backup/tmp/tars",
    "snapshot_dir": "/data-intern/Backup/tmp/snapshots",
    "tape_drives": [
        {"name": "lto9", "device_path": "/dev/nst0", "block_size": 524288},
        {"name": "lto6", "device_path": "/dev/nst1", "block_size": 524288},
    ],
    "tape_libraries": [{"name": "msl2024", "device_path": "/dev/sg10", "slots": 23, "drives": ["lto6", "lto9"]}],
}


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def assert_config_error(result: Result, *fragments: str) -> None:
    """Exit 4, one `Error: …` line naming what is wrong, no traceback."""
    assert result.exit_code == exitcodes.EXIT_CONFIG, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not a crash
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    """A working configuration of a small virtual library."""
    return write_library_config(tmp_path / "site", sqlite_url)


def edit(config: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = json.loads(config.read_text())
    change(data)
    config.write_text(json.dumps(data))
    return config


def test_the_original_pytp_config_is_accepted_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(ORIGINAL_CONFIG))
    config = read_config(path, "--config")
    assert [d.name for d in config.drives] == ["lto9", "lto6"] and config.drives[0].block_size == 524288
    assert config.library("msl2024").slots == 23 and config.library("msl2024").drives == ("lto6", "lto9")
    assert config.tar_dir == "/data-intern/Backup/tmp/tars"
    result = run(path, "config")
    assert result.exit_code == 0, result.output
    assert "msl2024" in result.stdout


def test_the_original_two_file_era_block_size_as_text_still_parses(tmp_path: Path) -> None:
    # The original put block_size into `mt setblk` as text, so "2048" worked there too.
    data = json.loads(json.dumps(ORIGINAL_CONFIG))
    data["tape_drives"][0]["block_size"] = "2048"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert read_config(path, "--config").drives[0].block_size == 2048


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda c: c.update(catalog={"url": 123}), ["catalog.url must be a string", "123"]),
        (lambda c: c.update(tar_dir=42), ["tar_dir must be a string", "42"]),
        (lambda c: c.update(snapshot_dir=["x"]), ["snapshot_dir must be a string"]),
        (lambda c: c["pools"][0].update(label_prefix=123), ["pools[0].label_prefix must be a string"]),
        (lambda c: c["tape_drives"][1].update(block_size="big"), ["tape_drives[1].block_size must be an integer"]),
        (lambda c: c["tape_drives"][0].update(block_size=1000), ["block_size 1000 must be a positive multiple of 512"]),
        (lambda c: c["tape_drives"][0].update(block_size=1 << 40), ["is above 67108864 (64 MiB)"]),
        (lambda c: c["tape_libraries"][0].update(slots=True), ["tape_libraries[0].slots must be an integer"]),
        (lambda c: c["tape_libraries"][0].update(drives="d0"), ["tape_libraries[0].drives must be a list"]),
        (lambda c: c.update(catalog="sqlite:///x.db"), ["catalog must be a JSON object"]),
        (lambda c: c.update(buffer={"memory_buffer": "lots"}), ["buffer.memory_buffer must be a number"]),
        (lambda c: c.update(buffer={"memory_buffer_percent": 150}), ["memory_buffer_percent must be at most 100"]),
        (lambda c: c.update(pools=[{"retention_days": 3}]), ["pools[0].name is missing"]),
        (lambda c: c.update(default_pool="weekly"), ["default_pool 'weekly' is not one of the pools"]),
        (lambda c: c["tape_drives"][0].update(type="lto"), ["type must be 'st' or 'virtual'"]),
    ],
)
def test_wrong_types_and_values_name_the_key_and_the_file(site: Path, change, fragments: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert_config_error(run(edit(site, change), "tapes"), f"Configuration {site}", *fragments)


@pytest.mark.parametrize(
    ("change", "wrong", "suggestion"),
    [
        (lambda c: c.update(tape_drivs=c.pop("tape_drives")), "'tape_drivs'", "did you mean 'tape_drives'?"),
        (lambda c: c.update(snapshotdir="/x"), "'snapshotdir'", "did you mean 'snapshot_dir'?"),
        (lambda c: c.update(default_pol="default"), "'default_pol'", "did you mean 'default_pool'?"),
        (lambda c: c["tape_drives"][0].update(blocksize=512), "'tape_drives[0].blocksize'", "'block_size'"),
        (lambda c: c["tape_libraries"][0].update(slot=4), "'tape_libraries[0].slot'", "'slots'"),
        (lambda c: c["pools"][1].update(retention=3), "'pools[1].retention'", "'retention_days'"),
        (lambda c: c["catalog"].update(uri="x"), "'catalog.uri'", "'url'"),
        (lambda c: c.update(restore_planning={"drive_mbps": 9}), "'restore_planning.drive_mbps'", "'drive_mb_per_s'"),
        (lambda c: c.update(buffer={"memory": 1}), "'buffer.memory'", "'memory_buffer'"),
    ],
)
def test_a_misspelled_key_is_an_error_with_the_closest_valid_key(
    site: Path,
    change,  # type: ignore[no-untyped-def]
    wrong: str,
    suggestion: str,
) -> None:
    assert_config_error(run(edit(site, change), "tapes"), f"Configuration {site}", f"unknown key {wrong}", suggestion)


def test_a_key_nothing_resembles_lists_the_valid_keys(site: Path) -> None:
    result = run(edit(site, lambda c: c.update(zzz=1)), "config")
    assert_config_error(result, "unknown key 'zzz'", "valid keys:", "tape_drives")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda c: c["tape_drives"].append(dict(c["tape_drives"][0])), "two drives (tape_drives) are named 'd0'"),
        (
            lambda c: c["tape_libraries"].append(dict(c["tape_libraries"][0])),
            "two libraries (tape_libraries) are named 'lib'",
        ),
        (lambda c: c["pools"].append({"name": "offsite"}), "two pools are named 'offsite'"),
        (  # two drives on one device would each take the other's tape (and lock) as their own
            lambda c: c["tape_drives"][1].update(device_path=c["tape_drives"][0]["device_path"]),
            "drives 'd0' and 'd1' (tape_drives) use the same device",
        ),
    ],
)
def test_duplicate_names_are_errors(site: Path, change, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert_config_error(run(edit(site, change), "tapes"), f"Configuration {site}", fragment)


def test_a_key_given_twice_in_one_object_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"tar_dir": "/a", "tar_dir": "/b"}')
    assert_config_error(run(path, "config"), str(path), "key 'tar_dir' appears twice")


def test_a_config_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"tar_dir": "/data/caf\xe9"}')
    assert_config_error(run(path, "tapes"), str(path), "is not UTF-8 text", "0xe9")


def test_zero_drive_speed_is_refused_before_restore_plan_divides_by_it(site: Path) -> None:
    edit(site, lambda c: c.update(restore_planning={"drive_mb_per_s": 0}))
    result = run(site, "restore", str(site.parent / "out"), "--match", "x", "--plan")
    assert_config_error(result, "restore_planning.drive_mb_per_s must be greater than 0")
    with pytest.raises(ConfigError, match="drive_mb_per_s"):
        read_config(site, "--config")


def test_a_missing_virtual_library_directory_is_a_config_error(site: Path, tmp_path: Path) -> None:
    edit(site, lambda c: c["tape_libraries"][0].update(device_path=str(tmp_path / "moved-away")))
    for args in (["list"], ["tapes"], ["load", "1", "-d", "d0"]):
        assert_config_error(run(site, *args), "Library 'lib'", "no virtual library at", "moved-away")


def test_the_example_and_the_embedded_default_pass_the_strict_check(tmp_path: Path) -> None:
    read_config(Path(__file__).parents[2] / "configs" / "config.json", "example")
    result = CliRunner().invoke(cli, ["config"])  # creates the embedded default, then reads it strictly
    assert result.exit_code == 0, result.output


def test_an_unwritable_configuration_folder_on_first_use(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["tapes"], env={"XDG_CONFIG_HOME": str(blocker / "config")})
    assert_config_error(result, "Cannot write the configuration", str(blocker))
