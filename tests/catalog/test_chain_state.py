"""The chain state an incremental compares with, on disk (``catalog/chain_state.py``, issue 9).

It must say what the in-memory set said: every known path the walk did not
find and did not leave out is deleted; its memory holds the directories on
the walk's path, not the tree.  The walks here are ``tarwriter.walk`` over
real trees that changed after the state was taken; the expected answer is
the rule itself, computed the naive way.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytp.catalog.chain_state import ChainState, Known
from pytp.catalog.spool_file import TempSpaceFull
from pytp.tapeio.exclude import Exclusions
from pytp.tapeio.tarwriter import walk


def _kind(st: os.stat_result) -> str:
    return "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"


def _row(path: bytes, kind: str, size: int = 0) -> tuple[object, ...]:
    return (path, kind, size, 1, 2, 3, 0o644, 0, 0, None, None, None)


def _snapshot(root: Path) -> list[tuple[object, ...]]:
    """The tree as a full backup records it: a row per path, in walk order."""
    return [_row(path, _kind(st), st.st_size) for path, st in walk(os.fsencode(root), lambda p: None)]


def _walk_with(state: ChainState, root: Path, exclude: Exclusions | None = None) -> tuple[set[bytes], set[bytes]]:
    """Walk ``root`` telling ``state``; what was found and what was left out."""
    found: set[bytes] = set()
    pruned: set[bytes] = set()

    def prune(path: bytes) -> None:
        pruned.add(path)
        state.prune(path)

    for path, st in walk(os.fsencode(root), lambda p: None, exclude, prune):
        found.add(path)
        state.add(path, stat.S_ISDIR(st.st_mode))
        known = state.get(path)  # what the backup's select asks, right after
        assert (known is None) == (path not in state_paths(state)), path
    return found, pruned


def state_paths(state: ChainState) -> set[bytes]:
    rows = state._db.execute("SELECT parent, name FROM state")
    return {parent + b"/" + name for parent, name in rows}


def _naive_missing(known: set[bytes], found: set[bytes], pruned: set[bytes]) -> list[bytes]:
    def below_pruned(path: bytes) -> bool:
        return any(path == p or path.startswith(p + b"/") for p in pruned)

    return sorted(p for p in known - found if not below_pruned(p))


def _random_tree(root: Path, rng: random.Random, depth: int = 0) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(rng.randint(0, 6)):
        name = rng.choice(["a", "a.txt", "a-b", "b", "cache", "x.tmp", "z", "ä"]) + str(i)
        if depth < 3 and rng.random() < 0.35:
            _random_tree(root / name, rng, depth + 1)
        else:
            (root / name).write_text(name)


def _mutate(root: Path, rng: random.Random) -> None:
    """Delete files and subtrees, turn directories into files and back, empty directories, add paths."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.exists() and not path.is_symlink():
            continue
        roll = rng.random()
        if path.is_dir():
            if roll < 0.12:
                shutil.rmtree(path)
            elif roll < 0.2:
                shutil.rmtree(path)
                path.write_text("a file now")
            elif roll < 0.26:
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif roll < 0.2:
            path.unlink()
        elif roll < 0.25:
            path.unlink()
            (path / "inner").mkdir(parents=True)
    (root / "new-dir").mkdir(exist_ok=True)
    (root / "new-dir" / "new-file").write_text("new")


@pytest.mark.parametrize("seed", range(40))
def test_missing_is_every_known_path_not_found_and_not_left_out(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "src"
    _random_tree(root, rng)
    (root / "cache").mkdir(exist_ok=True)
    (root / "cache" / "kept-out").write_text("excluded later")
    rows = _snapshot(root)
    _mutate(root, rng)
    exclude = Exclusions.build(["cache*", "*.tmp*"]) if seed % 2 else None
    with ChainState(os.fsencode(root)) as state:
        state.load(rows)
        known = state_paths(state)
        found, pruned = _walk_with(state, root, exclude)
        assert list(state.missing()) == _naive_missing(known, found, pruned)


def test_a_root_the_walk_never_found_is_missing_with_everything_below_it(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("f")
    rows = _snapshot(root)
    shutil.rmtree(root)
    with ChainState(os.fsencode(root)) as state:
        state.load(rows)
        assert list(walk(os.fsencode(root), lambda p: None)) == []
        assert list(state.missing()) == sorted(os.fsencode(p) for p in (root, root / "d", root / "d" / "f"))


def test_the_root_of_the_file_system_is_its_own_parent_key() -> None:
    rows = [_row(b"/", "dir"), _row(b"/etc", "dir"), _row(b"/etc/hosts", "file"), _row(b"/srv", "dir")]
    with ChainState(b"/") as state:
        state.load(rows)
        for path, is_dir in ((b"/", True), (b"/etc", True)):
            state.add(path, is_dir)
            assert state.get(path) == Known("dir", 0, 1, 2, 3, 0o644, 0, 0, None, None, None)
        assert list(state.missing()) == [b"/etc/hosts", b"/srv"]
    with ChainState(b"/") as state:
        state.load(rows)
        assert list(state.missing()) == [b"/", b"/etc", b"/etc/hosts", b"/srv"]


def test_the_newest_row_of_a_path_wins_and_a_deletion_marker_removes_it() -> None:
    rows = [
        _row(b"/s", "dir"),
        _row(b"/s/a", "file", 1),
        _row(b"/s/b", "file", 1),
        _row(b"/s/a", "file", 2),  # a later job's version
        (b"/s/b", "deleted", 0, 0, 0, 0, 0, 0, 0, None, None, None),
    ]
    with ChainState(b"/s") as state:
        state.load(rows)
        assert state.get(b"/s/a") is not None and state.get(b"/s/a").size == 2  # type: ignore[union-attr]
        assert state.get(b"/s/b") is None
        state.add(b"/s", True)
        assert list(state.missing()) == [b"/s/a"]


def test_memory_holds_the_directories_on_the_walks_path_not_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for d in range(30):
        (root / f"d{d:02d}" / "sub").mkdir(parents=True)
        for i in range(100):
            (root / f"d{d:02d}" / f"f{i:03d}").write_text("x")
        (root / f"d{d:02d}" / "sub" / "deep").write_text("y")
    rows = _snapshot(root)
    assert len(rows) > 3000
    with ChainState(os.fsencode(root)) as state:
        state.load(rows)
        _walk_with(state, root)
        assert list(state.missing()) == []
        # the root's 30 children, one directory's 101, its sub's one, the root itself
        assert state.peak_held <= 30 + 101 + 1 + 1


def test_a_full_temporary_directory_is_named() -> None:
    with ChainState(b"/s") as state:
        state._db.execute("PRAGMA max_page_count = 8")
        with pytest.raises(TempSpaceFull) as raised:
            state.load(_row(b"/s/f%06d" % i, "file") for i in range(20_000))
        assert "the state of the backup chain" in str(raised.value)
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)


def test_a_mount_point_not_entered_keeps_what_was_below_it() -> None:
    rows = [_row(b"/s", "dir"), _row(b"/s/mnt", "dir"), _row(b"/s/mnt/x", "file"), _row(b"/s/gone", "file")]
    for entered in (False, True):
        with ChainState(b"/s") as state:
            state.load(rows)
            state.add(b"/s", True)
            state.add(b"/s/mnt", True)
            if not entered:
                state.prune(b"/s/mnt")  # --one-file-system: found, not entered
            expected = [b"/s/gone"] if not entered else [b"/s/gone", b"/s/mnt/x"]
            assert list(state.missing()) == expected


# --- end to end, on the embedded default site (virtual library, 512 KiB blocks, SQLite) -----------


class DefaultSite:
    """The embedded default a first command creates (virtual library, 512 KiB blocks,
    SQLite) under ``tmp_path``, driven through the command line."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PYTP_")}
        self.env.update(
            XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"), HOME=str(tmp_path)
        )
        self.catalog = tmp_path / "data" / "pytp" / "catalog.db"

    def pytp(self, *args: str, status: int = 0, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        argv = [*prefix, sys.executable, "-m", "pytp.cli.main", *args]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        assert done.returncode == status, done.stdout + done.stderr
        return done

    def deleted(self, job: int, src: Path) -> set[str]:
        """The paths (relative to ``src``) that ``job`` recorded as deleted."""
        return self._paths(job, src, "kind = 'deleted'")

    def stored(self, job: int, src: Path) -> set[str]:
        """The paths (relative to ``src``, the root as "") that ``job`` stored."""
        return self._paths(job, src, "kind != 'deleted'")

    def _paths(self, job: int, src: Path, kind: str) -> set[str]:
        with sqlite3.connect(self.catalog) as catalog:
            rows = catalog.execute(
                f"SELECT coalesce(path, CAST(path_text AS BLOB)) FROM entry WHERE job_id = ? AND {kind}", (job,)
            ).fetchall()
        return {os.fsdecode(path)[len(str(src)) + 1 :] for (path,) in rows}


@pytest.mark.parametrize("strategy", ["direct", "tar"])
def test_an_incremental_on_the_default_site_records_exactly_what_is_gone(tmp_path: Path, strategy: str) -> None:
    site = DefaultSite(tmp_path)
    src = tmp_path / "src"
    for d in ("gone", "becomes-a-file", "emptied", "kept", "excluded"):
        (src / d / "sub").mkdir(parents=True)
        for i in range(300):
            (src / d / f"f{i:03d}").write_text(f"{d} {i}\n")
        (src / d / "sub" / "deep").write_text("deep\n")

    site.pytp("backup", str(src), "-q")
    shutil.rmtree(src / "gone")
    shutil.rmtree(src / "becomes-a-file")
    (src / "becomes-a-file").write_text("a file now\n")
    shutil.rmtree(src / "emptied" / "sub")
    for child in (src / "emptied").iterdir():
        child.unlink()
    (src / "kept" / "f000").unlink()
    site.pytp("backup", str(src), "--incremental", "--exclude", "excluded", "--strategy", strategy, "-q")

    tree = {f"{d}/f{i:03d}" for d in ("gone", "becomes-a-file", "emptied") for i in range(300)}
    tree |= {f"{d}/sub{tail}" for d in ("gone", "becomes-a-file", "emptied") for tail in ("", "/deep")}
    # not the excluded tree, nor what is still there
    assert site.deleted(2, src) == tree | {"gone", "kept/f000"}


def test_a_differential_records_what_an_incremental_since_the_full_stored_and_is_gone(tmp_path: Path) -> None:
    """The newest-version rule reads the incremental's files: a differential that
    compared only with the full job left them alive in every later restore."""
    site = DefaultSite(tmp_path)
    src = tmp_path / "src"
    (src / "old").mkdir(parents=True)
    for name in ("kept", "changed-by-inc", "old/gone-later"):
        (src / name).write_text(f"{name}\n")
    site.pytp("backup", str(src), "-q")  # job 1, full
    (src / "inc-only").write_text("stored by the incremental alone\n")
    (src / "inc-dir").mkdir()
    (src / "inc-dir" / "q").write_text("q\n")
    (src / "changed-by-inc").write_text("changed after the full\n")
    site.pytp("backup", str(src), "--incremental", "-q")  # job 2
    assert site.stored(2, src) >= {"inc-only", "inc-dir", "inc-dir/q", "changed-by-inc"}
    shutil.rmtree(src / "inc-dir")
    (src / "inc-only").unlink()
    (src / "old" / "gone-later").unlink()
    site.pytp("backup", str(src), "--level", "differential", "-q")  # job 3

    assert site.deleted(3, src) == {"inc-only", "inc-dir", "inc-dir/q", "old/gone-later"}
    # still a differential: what changed since the full, though the incremental had it too
    assert "changed-by-inc" in site.stored(3, src) and "kept" not in site.stored(3, src)
    for as_of in ((), ("--as-of", "3")):
        out = tmp_path / f"restored{len(as_of)}"
        site.pytp("restore", str(out), "--match", str(src), *as_of, "-q")
        restored = {str(p.relative_to(out / src.relative_to("/"))) for p in (out / src.relative_to("/")).rglob("*")}
        assert restored == {"kept", "changed-by-inc", "old"}, as_of


def test_what_an_incremental_could_not_look_at_is_not_taken_for_deleted(tmp_path: Path) -> None:
    """A directory it may not list, names it may not lstat: problems of a partial job, not deletions."""
    if shutil.which("setpriv") is None:
        pytest.skip("SKIPPED LOUDLY: setpriv (util-linux) is needed to take root's permission overrides away")
    site = DefaultSite(tmp_path)
    src = tmp_path / "src"
    for d in ("unlistable", "unsearchable", "fine"):
        (src / d / "sub").mkdir(parents=True)
        (src / d / "f").write_text(f"{d}\n")
        (src / d / "sub" / "deep").write_text("deep\n")
    site.pytp("backup", str(src), "-q")
    (src / "fine" / "f").unlink()
    (src / "unlistable").chmod(0)
    (src / "unsearchable").chmod(0o644)  # names listed, their lstat refused
    # without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH root meets the permissions as their owner does
    drop = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")
    try:
        done = site.pytp("backup", str(src), "--incremental", status=1, prefix=drop)
        checked = site.pytp("verify", "--against-disk", str(src), "--format", "json", status=10, prefix=drop)
    finally:
        (src / "unlistable").chmod(0o755)
        (src / "unsearchable").chmod(0o755)
    assert "cannot list directory" in done.stdout + done.stderr
    assert site.deleted(2, src) == {"fine/f"}
    assert json.loads(checked.stdout)["missing"] == []  # named as unreadable instead
    assert "unlistable: cannot list directory" in checked.stdout
    site.pytp("backup", str(src), "--incremental", "-q")  # all readable again: nothing is gone
    assert site.deleted(3, src) == set()


def test_a_directory_and_what_is_below_it_are_read_through_the_key_not_a_scan() -> None:
    from pytp.catalog.chain_state import BELOW_SQL

    with ChainState(b"/s") as state:
        for sql, params in ((state.children_sql, (b"/s",)), (BELOW_SQL, (b"/s", b"/s/", b"/s0"))):
            plan = " | ".join(row[3] for row in state._db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "USING PRIMARY KEY" in plan and "SCAN" not in plan, plan


_LIMITED_LOAD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
from pytp.catalog.chain_state import ChainState
from pytp.catalog.spool_file import TempSpaceFull
state = ChainState(b"/s")
try:
    state.load((b"/s/d%03d/f%07d" % (i % 100, i), "file", 1, 2, 3, 4, 5, 6, 7, None, "ab" * 16, None)
               for i in range(100_000))
except TempSpaceFull as err:
    print(err)
    sys.exit(3)
"""


def test_a_file_size_limit_on_the_temporary_database_is_named() -> None:
    """SQLite reports ``ulimit -f`` as a "disk I/O error" (SQLITE_IOERR_WRITE), not as "full"."""
    done = subprocess.run([sys.executable, "-c", _LIMITED_LOAD], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "Could not write the state of the backup chain" in done.stdout
    assert "file size limit (`ulimit -f`)" in done.stdout


def test_a_differential_compares_with_the_full_job_and_misses_the_paths_of_both() -> None:
    full = [_row(b"/s", "dir"), _row(b"/s/a", "file", 1), _row(b"/s/was-dir", "dir"), _row(b"/s/was-dir/x", "file")]
    since = [
        *full,
        _row(b"/s/a", "file", 2),  # an incremental's version
        _row(b"/s/inc", "file", 3),  # only the incremental stored it
        (b"/s/was-dir/x", "deleted", 0, 0, 0, 0, 0, 0, 0, None, None, None),
        _row(b"/s/was-dir", "file", 4),  # a file by the incremental's time
    ]
    with ChainState(b"/s") as state:
        state.load(since)
        state.load_reference(full)
        state.add(b"/s", True)
        assert state.get(b"/s") is not None
        state.add(b"/s/a", False)
        assert state.get(b"/s/a").size == 1  # type: ignore[union-attr]  # the full job's, not the newest
        # gone now: the incremental's file, and the full job's directory with what it had
        assert list(state.missing()) == [b"/s/inc", b"/s/was-dir", b"/s/was-dir/x"]
