"""The catalog database: migrations from empty to head, the stale-schema
refusal, and the engine factory, on SQLite files and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import inspect, text

from pytp.catalog.database import alembic_config, current_revision, head_revision, make_engine, open_catalog, upgrade
from pytp.catalog.errors import CatalogUnavailable, StaleCatalog
from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config


def test_upgrade_from_empty_reaches_head_and_matches_the_models(catalog_url: str) -> None:
    engine = make_engine(catalog_url)
    before, after = upgrade(engine)
    assert before is None and after == head_revision()
    assert {"volume", "job", "tape_file", "entry", "job_problem"} <= set(inspect(engine).get_table_names())
    # The migrations produce exactly what the models describe.
    with engine.begin() as connection:
        command.check(alembic_config(connection))


def test_fresh_catalog_is_created_and_stamped(catalog_url: str) -> None:
    engine = open_catalog(catalog_url)
    assert current_revision(engine) == head_revision()
    open_catalog(catalog_url)  # opening again is fine


def test_stale_catalog_is_refused_with_the_command_to_run(tmp_path: Path, sqlite_url: str) -> None:
    engine = open_catalog(sqlite_url)
    oldest = ScriptDirectory.from_config(alembic_config()).get_base()
    if oldest == head_revision():
        pytest.skip("one migration only: no older schema to be stale at")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :old"), {"old": oldest})
    with pytest.raises(StaleCatalog, match="pytp db upgrade"):
        open_catalog(sqlite_url)
    config = write_library_config(tmp_path / "site", sqlite_url)
    result = CliRunner().invoke(cli, ["--config", str(config), "jobs"])
    assert result.exit_code == exitcodes.EXIT_CATALOG
    assert f"Error: The catalog is at schema {oldest}" in result.stderr


def test_foreign_database_is_not_taken_for_a_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with make_engine(url).begin() as connection:
        connection.execute(text("CREATE TABLE something (x INTEGER)"))
    with pytest.raises(StaleCatalog, match="not a pytp catalog"):
        open_catalog(url)


@pytest.mark.parametrize("catalog_url", ["postgres"], indirect=True)  # a new SQLite file is linked in whole
def test_a_catalog_another_pytp_creates_between_two_reads_is_opened(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts' first start on a new PostgreSQL catalog: this process reads "no schema
    version", then the other one commits the new catalog. Read without the schema lock, "has tables" came next and the
    catalog was refused as "not a pytp catalog" (exit 5; seen in the two-host test); the
    decision is taken under the lock now."""
    from pytp.catalog import database

    real = database._stamped_revision
    reads: list[str | None] = []

    def racing(connection):  # type: ignore[no-untyped-def]
        seen = real(connection)
        reads.append(seen)
        if len(reads) == 1:
            monkeypatch.setattr(database, "_stamped_revision", real)
            open_catalog(catalog_url)  # the other pytp creates the catalog and commits, just now
            monkeypatch.setattr(database, "_stamped_revision", racing)
        return seen

    monkeypatch.setattr(database, "_stamped_revision", racing)
    engine = open_catalog(catalog_url)
    assert reads == [None, head_revision()]  # read again, under the lock
    assert current_revision(engine) == head_revision()


def test_db_upgrade_command_on_a_new_catalog(tmp_path: Path, sqlite_url: str) -> None:
    config = write_library_config(tmp_path / "site", sqlite_url)
    result = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"to {head_revision()}" in result.stdout
    again = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"])
    assert "nothing to do" in again.stdout
    assert head_revision() in CliRunner().invoke(cli, ["--config", str(config), "db", "current"]).stdout


def test_unreachable_catalog_is_a_clear_error() -> None:
    with pytest.raises(CatalogUnavailable):
        open_catalog("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(CatalogUnavailable, match="not valid"):
        make_engine("not a url")


def test_sqlite_catalog_uses_wal(sqlite_url: str) -> None:
    engine = open_catalog(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_downgrade_to_nothing_and_back(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_the_example_configuration_parses() -> None:
    from pytp.catalog.config import read_config

    config = read_config(Path(__file__).parents[2] / "configs" / "config.json", "example")
    assert [d.name for d in config.drives] == ["lto9", "lto6"] and config.drives[0].type == "st"
    assert config.library("msl2024").drives == ("lto6", "lto9") and config.library("msl2024").type == "mtx"
    assert config.pool("archive").label_prefix == "ARC" and config.default_pool == "daily"
