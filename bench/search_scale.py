"""Search at catalog scale without a backup: ``python -m bench.search_scale N DB``.

DB is a SQLite file to make, or the URL of a new, empty PostgreSQL database
(``postgresql+psycopg://user@host:port/name``): the rows then go in with
``COPY`` and the ``pg_trgm`` index is made once they are in.

:mod:`bench.search` fills its catalog through ``pytp catalog rebuild``, the
honest way, which takes minutes per million entries.  To see search and
catalog size at ten million entries, this fills a new catalog directly with
``executemany`` of rows as a backup stores them (the same synthetic paths as
:mod:`bench.search`, realistic sizes, modes, owners and checksums), then times
each pattern of :mod:`bench.search` in-process, through the reader ``pytp
search`` takes (``sqlite3`` for a SQLite catalog, SQLAlchemy Core for
PostgreSQL: ``light_sql.listing_reader``), three ways: ``rows``
(``search_rows``, every hit), ``table`` (what ``pytp search`` does on a
terminal: the first 1,000 hits in a table) and ``csv`` (``--format csv``:
every hit), the last two printed to /dev/null; and, if installed, plocate
over the same paths.  The database file is kept, so ``--search-only`` can
time it again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytp.catalog.light_sql import Reader

from .search import patterns, synthetic_path

BATCH = 50_000


#: when the job ran (text SQLite stores and PostgreSQL reads alike)
NOW = "2026-12-01 00:00:00.000000+00:00"


def _setup(execute: Any, placeholder: str, count: int) -> None:
    """The one tape, running job and tape file the entries belong to (ids 1)."""
    p = placeholder
    execute(
        "INSERT INTO volume (label, uuid, pool, status, block_size, bytes_written, file_count, format_version,"
        f" created_at) VALUES ('BEN001L9', 'u1', 'default', 'appendable', 524288, 0, 3, 1, {p})",
        (NOW,),
    )
    execute(
        "INSERT INTO job (uuid, level, strategy, status, sources, started_at, files, total_bytes, problems)"
        f" VALUES ('j1', 'full', 'direct', 'running', '[\"/srv\"]', {p}, {p}, 0, 0)",
        (NOW, count),
    )
    execute(
        "INSERT INTO tape_file (job_id, volume_id, file_number, kind, source_root, status, block_size, blocks,"
        f" total_bytes) VALUES (1, 1, 1, 'data', {p}, 'complete', 524288, 0, 0)",
        (b"/srv",),
    )


def _rows(count: int) -> Iterator[tuple[object, ...]]:
    """The entries as a backup stores them (``entry_insert.stored_row``: path NULL when
    UTF-8, the digest's bytes), with realistic sizes, times, inodes and checksums."""
    from pytp.catalog.entry_insert import stored_row
    from pytp.tapeio.tarwriter import MemberRecord

    for i in range(count):
        member = MemberRecord(
            path=synthetic_path(i).encode(),
            kind="file",
            size=(i * 7919) % 1_000_000,
            mode=0o100644,
            uid=1000,
            gid=1000,
            uname="user",
            gname="user",
            mtime_ns=1_700_000_000_000_000_000 + i * 1_000_003,
            ctime_ns=1_700_000_000_000_000_000 + i * 1_000_033,
            inode=1_000_000 + i,
            device=2049,
            link_target=None,
            xxh3=f"{(i * 0x9E3779B97F4A7C15) & ((1 << 128) - 1):032x}",
            offset=i * 4608,
            header_size=512,
        )
        yield stored_row(1, 1, member)


def build(db: Path, count: int) -> None:
    from pytp.catalog.database import make_engine, upgrade
    from pytp.catalog.entry_insert import entry_insert_sql

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    sql = entry_insert_sql(engine.dialect)
    engine.dispose()
    # sqlite3 itself, without fsync: only the rows matter here, not a backup's durability
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    _setup(con.execute, "?", count)
    start = time.perf_counter()
    rows = _rows(count)
    while batch := list(islice(rows, BATCH)):
        con.executemany(sql, batch)
        con.commit()
    print(f"built {count:,} entries in {time.perf_counter() - start:.0f} s")
    close_job(con)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.close()


def build_postgresql(url: str, count: int) -> None:
    """The same rows in a PostgreSQL catalog (a new, empty database at ``url``), sent as a
    backup sends them (``entry_insert.insert_rows``: ``COPY``); the ``pg_trgm`` index is
    dropped while they go in and made again after (one build instead of a GIN insert per
    row), then the table analysed, as autovacuum would."""
    from pytp.catalog import search_index
    from pytp.catalog.database import make_engine, upgrade
    from pytp.catalog.entry_insert import insert_rows

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        _setup(connection.exec_driver_sql, "%s", count)
        search_index.drop(connection)
    start = time.perf_counter()
    rows = _rows(count)
    with engine.begin() as connection:
        while batch := list(islice(rows, BATCH)):
            insert_rows(connection, batch)
    print(f"built {count:,} entries in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    with engine.begin() as connection:
        search_index.install(connection)
        connection.exec_driver_sql("UPDATE job SET status = 'ok' WHERE id = 1")
    print(f"trigram index made and the job closed in {time.perf_counter() - start:.1f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def close_job(con: sqlite3.Connection) -> None:
    """The job ends as a backup ends it; the catalog indexes its entries then."""
    start = time.perf_counter()
    con.execute("UPDATE job SET status = 'ok' WHERE id = 1")
    con.commit()
    print(f"job closed (entries indexed) in {time.perf_counter() - start:.1f} s")


def time_search(db: Path | str, count: int, repeat: int) -> None:
    """Each pattern in-process, against plocate over the same paths.

    :param db: a SQLite catalog file, or the URL of a PostgreSQL catalog.
    """
    from pytp.catalog.database import make_engine
    from pytp.catalog.light_sql import listing_reader
    from pytp.catalog.search_query import search_rows
    from pytp.cli.catalog_cmd import DEFAULT_LIMIT

    if isinstance(db, str):
        url = db
        # plocate's files beside nothing of the server's: in the temp dir, named by the count
        base = Path(tempfile.gettempdir()) / f"pytp-search-scale-{count}.db"
    else:
        url = f"sqlite:///{db.absolute()}"
        base = db
    engine = make_engine(url)
    paths = base.with_suffix(".paths")
    plocate_db = base.with_suffix(".plocate")
    builder = shutil.which("plocate-build", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if builder and shutil.which("plocate") and not plocate_db.exists():
        with open(paths, "w") as out:
            for i in range(count):
                out.write(synthetic_path(i) + "\n")
        subprocess.run([builder, "-l", "no", "-p", str(paths), str(plocate_db)], check=True)
        paths.unlink()
    if isinstance(db, str):
        with engine.connect() as connection:
            size = connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
    else:
        size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    print(f"catalog {size / count:.0f} B per entry ({size >> 20} MiB)")
    with listing_reader(url, lambda: engine) as reader:
        print(f"read through {type(reader).__name__}, as pytp search reads this catalog")
    if plocate_db.exists():
        print(f"plocate {plocate_db.stat().st_size / count:.0f} B per path")
    for kind, pattern in patterns(count):
        ref, plo = "", None
        if plocate_db.exists():
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                subprocess.run(["plocate", "-d", str(plocate_db), "--", pattern], stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            plo = statistics.median(times)
            ref = f", plocate {plo * 1000:.1f} ms"
        for mode, run in (
            ("rows", lambda reader: sum(1 for _ in search_rows(reader, [pattern]))),
            ("table", lambda reader: cli_output(reader, pattern, DEFAULT_LIMIT)),
            ("csv", lambda reader: cli_output(reader, pattern, None)),
        ):
            seconds, cpu, hits = [], [], 0
            for _ in range(repeat + 1):
                start, start_cpu = time.perf_counter(), time.process_time()
                with listing_reader(url, lambda: engine) as reader:
                    hits = run(reader)
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            # The first run warms the page cache; the CPU time is the steadier figure on a loaded machine.
            ours, ours_cpu = statistics.median(seconds[1:]), statistics.median(cpu[1:])
            ratio = f", ratio {plo / ours:.3f}" if plo is not None and mode == "rows" else ""
            print(
                f"{kind:7} {pattern!r:24} {mode:5} {hits:>9,} hits  {ours * 1000:8.1f} ms "
                f"(CPU {ours_cpu * 1000:.1f} ms){ref if mode == 'rows' else ''}{ratio}"
            )


def cli_output(reader: Reader, pattern: str, limit: int | None) -> int:
    """What ``pytp search PATTERN`` does after opening the catalog: a table of the first
    ``limit`` hits (a terminal's default) or, without a limit, every hit as CSV; printed
    to /dev/null.  Returns the hits shown."""
    from itertools import islice

    from pytp.catalog.search_query import search_rows
    from pytp.cli.catalog_cmd import hit_row, print_csv
    from pytp.cli.hit_table import print_table

    hits = search_rows(reader, [pattern], include_deleted=True, limit=limit + 1 if limit else None)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        if not limit:
            return print_csv(hit_row(h) for h in hits)
        rows = [hit_row(h) for h in islice(hits, limit)]
        next(hits, None)  # whether there are more
        print_table(rows, ["path", "size", "mtime", "host", "job", "tape", "tape_file", "deleted_by"])
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument(
        "db", help="a SQLite file to make, or the URL of a new, empty PostgreSQL database (postgresql+psycopg://…)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--search-only", action="store_true")
    args = parser.parse_args()
    db: Path | str = args.db if "://" in args.db else Path(args.db)
    if not args.search_only:
        if isinstance(db, str):
            build_postgresql(db, args.count)
        elif db.exists():
            raise SystemExit(f"{db} exists; remove it or give --search-only")
        else:
            build(db, args.count)
    time_search(db, args.count, args.repeat)


if __name__ == "__main__":
    os.environ.setdefault("PYTP_DEBUG", "")
    main()
