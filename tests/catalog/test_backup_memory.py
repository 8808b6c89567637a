"""A backup holds nothing per file for the whole job (issue 9: memory bounded for any number of files).

Measured, not assumed: the same backup of N and of 4N tiny files, each in a
process of its own (real SQLite catalog, the virtual library at the default
512 KiB block size, a small memory buffer so that the buffer's fill is the
same for both), and the peaks of what Python allocated (``tracemalloc``)
compared.  Before the fix every file left its member start (header included)
and its path behind, about 0.6 KiB a file: 9 MiB more for the larger tree.
The resident set is not compared: it moves by 10 MiB or so with when the
allocator hands memory back and SQLite's page cache fills (bounded, but
larger than the difference to find); ``python -m bench --only memory``
measures it at a million files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytp.tapeio.continuation import MemberStart, plan_resume
from pytp.tapeio.tarformat import MemberHeader, build_header
from tests.conftest import write_library_config

SMALL, LARGE = 5_000, 20_000
#: the larger backup may peak this much higher (a batch of rows more or less);
#: 0.6 KiB a file held for the job would be about 9 MiB
ALLOWED_GROWTH_MIB = 4

_CHILD = """
import json, sys, tracemalloc
from pathlib import Path
from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.config import read_config
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select

config_path, source, strategy, level = sys.argv[1:5]
config = read_config(Path(config_path), "--config")
engine = open_catalog(config.catalog_url)
options = BackupOptions([source], strategy=strategy, buffer_bytes=4 << 20, level=level)
if level != "full":  # the full job it compares with, not measured
    assert run_backup(engine, config, select(config), BackupOptions([source], buffer_bytes=4 << 20)).status == "ok"
if level == "verify-disk":  # pytp verify --against-disk SOURCE
    from pytp.catalog.verify import verify_disk
    tracemalloc.start(1)
    report = verify_disk(engine, source)
    peak = tracemalloc.get_traced_memory()[1]
    status = "ok" if report.ok else "differs"
    print(json.dumps({"status": status, "level": level, "files": report.checked, "peak": peak}))
    sys.exit(0)
tracemalloc.start(1)
result = run_backup(engine, config, select(config), options)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"status": result.status, "level": result.level, "files": result.files, "peak": peak}))
"""


def _tree(root: Path, count: int) -> Path:
    """``count`` one-byte files, 1,000 per directory (like a file server's tree)."""
    for i in range(count):
        directory = root / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{i:06d}").write_bytes(b"x")
    return root


def _peak_of_backup(tmp_path: Path, count: int, strategy: str, level: str = "full") -> int:
    site = tmp_path / f"site{count}"
    site.mkdir()
    config = write_library_config(site, f"sqlite:///{site / 'catalog.db'}", block_size=512 << 10, drives=1)
    source = _tree(tmp_path / f"src{count}", count)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), str(source), strategy, level],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["level"] == level
    # an incremental stores the directories; a verify against disk checks every path
    assert result["files"] >= (count if level in ("full", "verify-disk") else count // 1000)
    return int(result["peak"])


@pytest.mark.parametrize(
    ("strategy", "level"),
    [
        ("direct", "full"),
        ("tar", "full"),
        ("direct", "incremental"),
        ("tar", "differential"),
        ("direct", "verify-disk"),
    ],
)
def test_peak_memory_does_not_grow_with_the_file_count(tmp_path: Path, strategy: str, level: str) -> None:
    """An incremental or differential of an unchanged tree too: the chain's state was a
    dict and a set of every path, ~1.3 KiB a file (``catalog/chain_state.py``); and
    ``verify --against-disk`` of it, which held the same."""
    small = _peak_of_backup(tmp_path, SMALL, strategy, level)
    large = _peak_of_backup(tmp_path, LARGE, strategy, level)
    growth = (large - small) / 2**20
    assert growth < ALLOWED_GROWTH_MIB, (
        f"{strategy} {level}: Python's peak {small / 2**20:.1f} MiB for {SMALL:,} files, {large / 2**20:.1f} MiB for "
        f"{LARGE:,}: {growth:.1f} MiB more, something is kept per file"
    )


def _starts(count: int) -> list[MemberStart]:
    """Starts of a stream of ``count`` members of growing sizes (data, padding, headers)."""
    starts, offset = [], 0
    for n in range(count):
        header = MemberHeader(b"m%04d" % n, "file", n * 300, 0o644, 0, 0, "", "", 0)
        encoded = build_header(header)
        starts.append(MemberStart(offset, len(encoded), header))
        offset += len(encoded) + -(-n * 300 // 512) * 512
    return starts


def test_the_window_of_member_starts_plans_every_cut_as_the_whole_list_did() -> None:
    from pytp.catalog.spanning import MemberStarts

    starts = _starts(60)
    end = starts[-1].data_start + starts[-1].data_size
    for cut in range(0, end + 1024, 512):
        window = MemberStarts()
        for start in starts:
            window.append(start)
        assert plan_resume(window.before(cut), cut) == plan_resume(starts, cut)
        # What is left is the member the cut is in and those after it: nothing before.
        assert len(window) <= len([s for s in starts if s.offset > cut]) + 1


def test_the_window_reads_a_spool_only_as_far_as_the_writer_got() -> None:
    from pytp.catalog.spanning import MemberStarts

    starts = _starts(60)
    taken: list[MemberStart] = []

    def spool():  # type: ignore[no-untyped-def]
        for start in starts:
            taken.append(start)
            yield start

    window = MemberStarts()
    window.follow(spool())
    cut = starts[20].offset + 512
    assert plan_resume(window.before(cut), cut) == plan_resume(starts, cut)
    assert len(taken) <= 22 and len(window) <= 2
    window.advance(starts[-1].offset + 10**6)
    assert len(taken) == len(starts) and len(window) == 1


@pytest.mark.parametrize("strategy", ["tar", "dd"])
def test_a_staged_archive_spans_tapes_with_its_spooled_starts(tmp_path: Path, strategy: str) -> None:
    """The staged strategies read member starts from their spool at end of medium: the files come back whole."""
    import hashlib

    from click.testing import CliRunner

    from pytp.cli.main import cli

    config = write_library_config(tmp_path / "site", f"sqlite:///{tmp_path / 'c.db'}", tapes=4, tape_size=8 << 20)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(300_000 + i * 1000))

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("backup", str(src), "--strategy", strategy)
    assert "ok" in out and "PYT002L9" in out, out
    run("verify", "--job", "1")
    target = tmp_path / "restored"
    run("restore", str(target), "--job", "1")
    for path in src.iterdir():
        restored = target / str(path).lstrip("/")
        assert hashlib.sha256(restored.read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()
