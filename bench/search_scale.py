"""Search at catalog scale without a backup: ``python -m bench.search_scale N DB``.

:mod:`bench.search` fills its catalog through ``pytp catalog rebuild``, the
honest way, which takes minutes per million entries.  To see search and
catalog size at ten million entries, this fills a new catalog directly with
``executemany`` of rows as a backup stores them (the same synthetic paths as
:mod:`bench.search`, realistic sizes, modes, owners and checksums), then times
each pattern of :mod:`bench.search` in-process three ways: ``rows``
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
import time
from pathlib import Path

from sqlmodel import Session

from .search import patterns, synthetic_path

BATCH = 50_000


def build(db: Path, count: int) -> None:
    from pytp.catalog.database import make_engine, upgrade
    from pytp.catalog.entry_types import HexDigest, RawPath

    # The values as pytp's own inserts store them (path NULL when UTF-8, the digest's bytes).
    dialect = make_engine("sqlite://").dialect
    store_path = RawPath().bind_processor(dialect) or (lambda v: v)
    store_digest = HexDigest().bind_processor(dialect) or (lambda v: v)

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = "2026-12-01 00:00:00.000000+00:00"
    con.execute(
        "INSERT INTO volume (label, uuid, pool, status, block_size, bytes_written, file_count, format_version,"
        " created_at) VALUES ('BEN001L9', 'u1', 'default', 'appendable', 524288, 0, 3, 1, ?)",
        (now,),
    )
    con.execute(
        "INSERT INTO job (uuid, level, strategy, status, sources, started_at, files, total_bytes, problems)"
        " VALUES ('j1', 'full', 'direct', 'running', '[\"/srv\"]', ?, ?, 0, 0)",
        (now, count),
    )
    con.execute(
        "INSERT INTO tape_file (job_id, volume_id, file_number, kind, source_root, status, block_size, blocks,"
        " total_bytes) VALUES (1, 1, 1, 'data', ?, 'complete', 524288, 0, 0)",
        (b"/srv",),
    )
    sql = (
        "INSERT INTO entry (job_id, tape_file_id, path, path_text, kind, size, mode, uid, gid, uname, gname,"
        " mtime_ns, ctime_ns, inode, device, link_target, xxh3, offset, header_size)"
        " VALUES (1, 1, ?, ?, 'file', ?, 33188, 1000, 1000, 'user', 'user', ?, ?, ?, 2049, NULL, ?, ?, 512)"
    )
    start = time.perf_counter()
    for first in range(0, count, BATCH):
        rows = []
        for i in range(first, min(count, first + BATCH)):
            text = synthetic_path(i)
            rows.append(
                (
                    store_path(text.encode()),
                    text,
                    (i * 7919) % 1_000_000,
                    1_700_000_000_000_000_000 + i * 1_000_003,
                    1_700_000_000_000_000_000 + i * 1_000_033,
                    1_000_000 + i,
                    store_digest(f"{(i * 0x9E3779B97F4A7C15) & ((1 << 128) - 1):032x}"),
                    i * 4608,
                )
            )
        con.executemany(sql, rows)
        con.commit()
    print(f"built {count:,} entries in {time.perf_counter() - start:.0f} s")
    close_job(con)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("VACUUM")
    con.close()


def close_job(con: sqlite3.Connection) -> None:
    """The job ends as a backup ends it; the catalog indexes its entries then."""
    start = time.perf_counter()
    con.execute("UPDATE job SET status = 'ok' WHERE id = 1")
    con.commit()
    print(f"job closed (entries indexed) in {time.perf_counter() - start:.1f} s")


def time_search(db: Path, count: int, repeat: int) -> None:
    from pytp.catalog.database import make_engine
    from pytp.catalog.search import search_rows
    from pytp.cli.catalog_cmd import DEFAULT_LIMIT

    engine = make_engine(f"sqlite:///{db}")
    paths = db.with_suffix(".paths")
    plocate_db = db.with_suffix(".plocate")
    builder = shutil.which("plocate-build", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if builder and shutil.which("plocate") and not plocate_db.exists():
        with open(paths, "w") as out:
            for i in range(count):
                out.write(synthetic_path(i) + "\n")
        subprocess.run([builder, "-l", "no", "-p", str(paths), str(plocate_db)], check=True)
        paths.unlink()
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    print(f"catalog {size / count:.0f} B per entry ({size >> 20} MiB)")
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
            ("rows", lambda session: sum(1 for _ in search_rows(session, [pattern]))),
            ("table", lambda session: cli_output(session, pattern, DEFAULT_LIMIT)),
            ("csv", lambda session: cli_output(session, pattern, None)),
        ):
            seconds, cpu, hits = [], [], 0
            for _ in range(repeat + 1):
                start, start_cpu = time.perf_counter(), time.process_time()
                with Session(engine) as session:
                    hits = run(session)
                seconds.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            # The first run warms the page cache; the CPU time is the steadier figure on a loaded machine.
            ours, ours_cpu = statistics.median(seconds[1:]), statistics.median(cpu[1:])
            ratio = f", ratio {plo / ours:.3f}" if plo is not None and mode == "rows" else ""
            print(
                f"{kind:7} {pattern!r:24} {mode:5} {hits:>9,} hits  {ours * 1000:8.1f} ms "
                f"(CPU {ours_cpu * 1000:.1f} ms){ref if mode == 'rows' else ''}{ratio}"
            )


def cli_output(session: Session, pattern: str, limit: int | None) -> int:
    """What ``pytp search PATTERN`` does after opening the catalog: a table of the first
    ``limit`` hits (a terminal's default) or, without a limit, every hit as CSV; printed
    to /dev/null.  Returns the hits shown."""
    from itertools import islice

    from pytp.catalog.search import search_rows
    from pytp.cli.catalog_cmd import hit_row, print_csv
    from pytp.cli.hit_table import print_table

    hits = search_rows(session, [pattern], include_deleted=True, limit=limit + 1 if limit else None)
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
    parser.add_argument("db", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--search-only", action="store_true")
    args = parser.parse_args()
    if not args.search_only:
        if args.db.exists():
            raise SystemExit(f"{args.db} exists; remove it or give --search-only")
        build(args.db, args.count)
    time_search(args.db, args.count, args.repeat)


if __name__ == "__main__":
    os.environ.setdefault("PYTP_DEBUG", "")
    main()
