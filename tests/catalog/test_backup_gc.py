"""A backup leaves the objects alive before it out of the garbage collector's passes, and gives them back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.progress import NullProgress


class FreezeWatch(NullProgress):
    """Notes gc's frozen object count as each file is stored."""

    def __init__(self) -> None:
        self.frozen: list[int] = []

    def file(self, path: str, size: int) -> None:
        self.frozen.append(gc.get_freeze_count())


def test_the_collector_skips_what_was_alive_before_the_job_and_gets_it_back(
    sqlite_lib_config, source_tree: Path
) -> None:
    engine = open_catalog(sqlite_lib_config.catalog_url)
    watch = FreezeWatch()
    assert gc.get_freeze_count() == 0
    result = run_backup(
        engine, sqlite_lib_config, select_drive(sqlite_lib_config), BackupOptions([str(source_tree)]), watch
    )
    assert result.status == "ok" and watch.frozen
    assert min(watch.frozen) > 1000  # the modules and the ORM's metadata, at least
    assert gc.get_freeze_count() == 0


class Failing(NullProgress):
    def file(self, path: str, size: int) -> None:
        assert gc.get_freeze_count() > 0
        raise RuntimeError("the listener broke")


def test_a_job_that_fails_gives_them_back_too(sqlite_lib_config, source_tree: Path) -> None:
    engine = open_catalog(sqlite_lib_config.catalog_url)
    options = BackupOptions([str(source_tree)])
    with pytest.raises(RuntimeError, match="the listener broke"):
        run_backup(engine, sqlite_lib_config, select_drive(sqlite_lib_config), options, Failing())
    assert gc.get_freeze_count() == 0
