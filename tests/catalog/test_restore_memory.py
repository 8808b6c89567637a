"""A whole-job restore holds nothing per file (issue 9: memory bounded for any number of files).

The same restore of a job of N and of 4N tiny files, each in a process of its
own (real SQLite catalog, the virtual library at the default 512 KiB block
size, GNU tar extracting), and the peaks of what Python allocated
(``tracemalloc``) compared.  Before the fix the selection, its sorted copy and
the plan held an ORM entry (and more) per file, about 2 KiB a file: some
15 MiB more for the larger job.  Hard links and members cut across tapes are
still kept one by one (there are none here); directories too (a few here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pytp.cli.main import cli
from tests.conftest import write_library_config

SMALL, LARGE = 2_000, 8_000
#: the larger restore may peak this much higher (a batch of rows more or less)
ALLOWED_GROWTH_MIB = 3

_CHILD = """
import json, sys, tracemalloc
from pathlib import Path
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select
from pytp.catalog.restore import RestoreOptions, run_restore

config_path, target = sys.argv[1:3]
config = read_config(Path(config_path), "--config")
engine = open_catalog(config.catalog_url)
tracemalloc.start(1)
result = run_restore(engine, config, select(config), RestoreOptions(target, job_id=1))
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"files": result.files, "verified": result.verified, "peak": peak}))
"""


def _backed_up(tmp_path: Path, count: int) -> Path:
    """A site whose job 1 holds ``count`` one-byte files, 500 per directory."""
    site = tmp_path / f"site{count}"
    site.mkdir()
    config = write_library_config(site, f"sqlite:///{site / 'catalog.db'}", block_size=512 << 10, drives=1)
    source = tmp_path / f"src{count}"
    for i in range(count):
        directory = source / f"d{i // 500:03d}"
        if i % 500 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:06d}").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["--config", str(config), "backup", str(source)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return config


def _peak_of_restore(tmp_path: Path, count: int) -> int:
    config = _backed_up(tmp_path, count)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), str(tmp_path / f"restored{count}")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["files"] > count and result["verified"] == count
    return int(result["peak"])


def test_peak_memory_of_a_whole_job_restore_does_not_grow_with_the_file_count(tmp_path: Path) -> None:
    small = _peak_of_restore(tmp_path, SMALL)
    large = _peak_of_restore(tmp_path, LARGE)
    growth = (large - small) / 2**20
    assert growth < ALLOWED_GROWTH_MIB, (
        f"Python's peak {small / 2**20:.1f} MiB restoring {SMALL:,} files, {large / 2**20:.1f} MiB for "
        f"{LARGE:,}: {growth:.1f} MiB more, something is kept per file"
    )
