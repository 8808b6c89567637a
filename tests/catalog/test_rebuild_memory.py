"""A catalog rebuild holds nothing per member for the whole tape (issue 9: memory bounded for any number of files).

Measured, not assumed, as ``test_backup_memory`` does for a backup: the same
rebuild of a tape whose manifest lists N and 4N members, each in a process
of its own (real SQLite catalog, the virtual library at the default 512 KiB
block size), and the peaks of what Python allocated (``tracemalloc``)
compared.  Before the fix a rebuild read the manifest whole, parsed every
line into a dict, built every entry row, and kept sets of every offset and
path: Python's peak grew by 74 MiB from 5,000 to 20,000 members (~5 KiB a
member); it grows by about 1 MiB now.  The same for a tape whose manifest is
lost, rebuilt from the data file's tar headers (a row per member was kept
until the tape file's end): 41 MiB before, nothing now.
``python -m bench --only search`` measures the resident set at a million.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_library_config
from tests.crafted_tape import (
    DEFAULT_BLOCK_SIZE,
    Manifest,
    file_member,
    library_tape,
    manifest_job,
    manifest_payload,
    tar_bytes,
    write_tape,
)

SMALL, LARGE = 5_000, 20_000
#: the larger rebuild may peak this much higher (a batch of rows more or
#: less); 0.3 KiB a member held for the tape would be about 4 MiB
ALLOWED_GROWTH_MIB = 4
TAPE = "PYT001L9"
#: bytes each synthetic member takes in its (imagined) data file: a header and a record
STRIDE = 1024

_CHILD = """
import json, sys, tracemalloc
from pathlib import Path
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select
from pytp.catalog.rebuild import rebuild

config_path, tape = sys.argv[1:3]
config = read_config(Path(config_path), "--config")
engine = open_catalog(config.catalog_url)
tracemalloc.start(1)
report = rebuild(engine, config, select(config), tape=tape)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({
    "entries": report.entries, "recovered": report.recovered_entries, "peak": peak,
    "problems": [str(p) for p in report.problems],
}))
"""


def _listed_tape(library: Path, count: int) -> None:
    """A data file, then a manifest listing ``count`` members of it (the data file itself is small)."""
    archive = tar_bytes([file_member("srv/seed.txt", b"seed\n")])
    blocks = -(-(count + 1) * STRIDE // DEFAULT_BLOCK_SIZE)
    lines = (
        {
            "path": f"/srv/d{i // 1000:03d}/f{i:06d}.txt",
            "type": "file",
            "size": 1,
            "mode": 0o644,
            "uid": 1000,
            "gid": 1000,
            "uname": "user",
            "gname": "user",
            "mtime_ns": 1_700_000_000_000_000_000 + i,
            "ctime_ns": 1_700_000_000_000_000_000 + i,
            "inode": 1_000_000 + i,
            "device": 2049,
            "xxh3": f"{i:032x}",
            "tape": TAPE,
            "tape_file": 1,
            "offset": i * STRIDE,
            "header_size": 512,
        }
        for i in range(count)
    )
    payload = manifest_payload(manifest_job(tape_files=[(TAPE, 1, "/srv", blocks)]), lines)
    # The data file is as long as the manifest says: a rebuild checks that by spacing over it.
    archive = archive.ljust(blocks * DEFAULT_BLOCK_SIZE, b"\0")
    write_tape(library_tape(library, TAPE), [archive, Manifest(payload)], label=TAPE)


def _unlisted_tape(library: Path, count: int) -> None:
    """A data file of ``count`` one-byte members whose manifest is unreadable: only its tar headers describe it."""
    archive = tar_bytes(file_member(f"srv/d{i // 1000:03d}/f{i:06d}.txt", b"x") for i in range(count))
    write_tape(library_tape(library, TAPE), [archive, Manifest(b"\xff not a manifest\n")], label=TAPE)


def _peak_of_rebuild(tmp_path: Path, count: int, kind: str) -> int:
    site = tmp_path / f"site{count}"
    config = write_library_config(site, f"sqlite:///{site / 'catalog.db'}", block_size=DEFAULT_BLOCK_SIZE, drives=1)
    (_listed_tape if kind == "manifest" else _unlisted_tape)(site / "lib", count)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), TAPE],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if kind == "manifest":
        assert result["entries"] == count and not result["problems"], result
    else:
        assert result["recovered"] == count, result
    return int(result["peak"])


@pytest.mark.parametrize("kind", ["manifest", "headers"])
def test_peak_memory_does_not_grow_with_the_member_count(tmp_path: Path, kind: str) -> None:
    small = _peak_of_rebuild(tmp_path, SMALL, kind)
    large = _peak_of_rebuild(tmp_path, LARGE, kind)
    growth = (large - small) / 2**20
    assert growth < ALLOWED_GROWTH_MIB, (
        f"rebuild from the {kind}: Python's peak {small / 2**20:.1f} MiB for {SMALL:,} members, "
        f"{large / 2**20:.1f} MiB for {LARGE:,}: {growth:.1f} MiB more, something is kept per member"
    )
