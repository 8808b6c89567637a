"""The core's progress events (catalog/progress.py): backup, restore, verify and rebuild report them.

Real jobs on the virtual library at 512 KiB blocks with a real SQLite
catalog; a recording listener checks what arrives: the totals (the previous
job's as the backup's estimate, the catalog's for restore and verify), each
file once, paths only for a listener that asks for them, and ``done``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.catalog.backup import BackupOptions, previous_totals, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import release_unused
from pytp.catalog.devices import select as select_drive
from pytp.catalog.progress import NULL, CountingProgress, NullProgress, Progress
from pytp.catalog.rebuild import rebuild
from pytp.catalog.restore import RestoreOptions, run_restore
from pytp.catalog.verify import verify_tape
from tests.conftest import write_library_config

BLOCK = 512 << 10


class Recorder(CountingProgress):
    """Keeps every event, as the display would see it."""

    def __init__(self, paths: bool = False) -> None:
        super().__init__()
        self.wants_paths = paths
        self.starts: list[tuple[str, int | None, int | None, str]] = []
        self.paths: list[str] = []
        self.fills: list[float] = []

    def start(self, what, total_files=None, total_bytes=None, unit="files"):  # type: ignore[no-untyped-def]
        self.starts.append((what, total_files, total_bytes, unit))
        super().start(what, total_files, total_bytes, unit)

    def file(self, path: str, size: int) -> None:
        self.paths.append(path)
        super().file(path, size)

    def buffer_fill(self, fraction: float) -> None:
        self.fills.append(fraction)
        super().buffer_fill(fraction)


@pytest.fixture
def config(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    return read_config(write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK), "--config")


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    for i in range(20):
        (root / "d" / f"f{i:02d}").write_bytes(os.urandom(50_000))
    (root / "big").write_bytes(os.urandom(3 << 20))
    return root


def _backup(engine, config, src: Path, progress: Progress | None = None):  # type: ignore[no-untyped-def]
    result = run_backup(engine, config, select_drive(config, "d0"), BackupOptions([str(src)], job_name="p"), progress)
    release_unused()
    return result


def test_null_listener_is_the_default_and_counts_nothing() -> None:
    assert isinstance(NULL, NullProgress) and isinstance(NULL, Progress) and not NULL.wants_paths
    NULL.start("x", 1, 2)
    NULL.file("a", 1)
    NULL.done()


def test_backup_events_totals_from_the_previous_job_and_paths_only_when_asked(  # type: ignore[no-untyped-def]
    config, tmp_path: Path
) -> None:
    engine = open_catalog(config.catalog_url)
    src = _tree(tmp_path / "src")
    first = Recorder()
    one = _backup(engine, config, src, first)
    # No earlier job of these sources: no total, so no ETA.
    assert first.starts == [("backup", None, None, "files")]
    assert first.totals.files == one.files == 23  # src, d, 20 files, big
    assert set(first.paths) == {""}  # a listener without paths gets no decoded path
    assert first.totals.bytes >= one.bytes  # archive bytes: data plus headers
    assert first.fills and all(0.0 <= f <= 1.0 for f in first.fills)
    assert first.finished == 1
    second = Recorder(paths=True)
    two = _backup(engine, config, src, second)
    assert second.starts == [("backup", one.files, one.bytes, "files")]
    assert str(src / "big") in second.paths and len(second.paths) == two.files
    assert previous_totals.__doc__  # the documented estimate


def test_restore_and_verify_count_every_file_against_the_catalog(  # type: ignore[no-untyped-def]
    config, tmp_path: Path
) -> None:
    engine = open_catalog(config.catalog_url)
    src = _tree(tmp_path / "src")
    backup = _backup(engine, config, src)
    restored = Recorder(paths=True)
    options = RestoreOptions(target=str(tmp_path / "out"), job_id=backup.job_id)
    result = run_restore(engine, config, select_drive(config), options, restored)
    release_unused()
    (what, files, size, _), = restored.starts
    assert (what, files, size) == ("restore", result.files, result.bytes)
    assert restored.totals.files == result.files and restored.totals.bytes == result.bytes
    assert str(src / "d" / "f07") in restored.paths
    assert any("member(s)" in n for n in restored.notes)  # the tape being mounted
    checked = Recorder()
    report = verify_tape(engine, config, select_drive(config), job_id=backup.job_id, progress=checked)
    release_unused()
    assert report.ok
    (what, files, size, _), = checked.starts
    assert what == "verify" and files == report.checked == checked.totals.files
    assert size == report.bytes == checked.totals.bytes
    assert checked.finished == 1


def test_rebuild_counts_tapes(config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = open_catalog(config.catalog_url)
    src = _tree(tmp_path / "src")
    _backup(engine, config, src)
    fresh = open_catalog(f"sqlite:///{tmp_path / 'fresh.db'}")
    events = Recorder()
    rebuild(fresh, config, select_drive(config, "d0"), all_tapes=True, progress=events)
    release_unused()
    assert events.starts == [("rebuild", None, None, "tapes")]
    assert events.totals.files >= 1 and any(n.startswith("reading tape") for n in events.notes)
    assert events.finished == 1
