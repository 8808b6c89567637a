"""Test fixtures shared by every tier: a clean environment, small virtual
libraries, source trees, and catalog URLs for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgserver import postgres_server  # noqa: F401 - session fixture

PRODUCT_VARS = ("PYTP_DEV", "PYTP_LIB", "PYTP_CONFIG", "PYTP_CATALOG_URL", "PYTP_HOSTNAME")
REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test an installed pytp other than this checkout's code.

    An editable install made from another clone would silently test that
    clone instead; `pip install -e .` here fixes it.  A Python without pytp
    (and its packages) is told the command that installs them.
    """
    try:
        import pytp.catalog
    except ModuleNotFoundError as err:
        raise pytest.UsageError(
            f"{err.msg} in this Python ({sys.executable}): run the README's test command, `bash .ci/test` "
            f"(it installs pytp and its test packages into {REPO / '.venv'}), or `pip install -e '{REPO}[test]'`"
        ) from None

    installed = Path(pytp.catalog.__file__).resolve().parent
    if installed != REPO / "catalog":
        raise pytest.UsageError(
            f"pytp is imported from {installed}, not from this checkout ({REPO}). Run: pip install -e {REPO}"
        )


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's pytp setup (borg's conftest.clean_env)."""
    home = tmp_path_factory.mktemp("home")
    for var in PRODUCT_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


def write_library_config(
    directory: Path,
    catalog_url: str,
    *,
    tapes: int = 4,
    slots: int = 6,
    tape_size: int = 64 << 20,
    block_size: int = 64 << 10,
    drives: int = 2,
    pools: list[dict] | None = None,
) -> Path:
    """A config with one small virtual library ``lib`` and return its path."""
    from pytp.tapeio.virtual_changer import create_virtual_library

    library = directory / "lib"
    create_virtual_library(library, "lib", drives=drives, slots=slots, tapes=tapes, tape_size=tape_size)
    config = {
        "tar_dir": str(directory / "tars"),
        "snapshot_dir": str(directory / "snapshots"),
        "catalog": {"url": catalog_url},
        "pools": pools or [{"name": "default", "retention_days": 30}, {"name": "offsite", "retention_days": 365}],
        "tape_drives": [
            {
                "name": f"d{i}",
                "device_path": str(library / "drives" / str(i)),
                "block_size": block_size,
                "type": "virtual",
            }
            for i in range(drives)
        ],
        "tape_libraries": [
            {
                "name": "lib",
                "device_path": str(library),
                "slots": slots,
                "drives": [f"d{i}" for i in range(drives)],
                "type": "virtual",
            }
        ],
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog: a real SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def lib_config(tmp_path: Path, catalog_url: str):  # type: ignore[no-untyped-def]
    """The parsed configuration of a small virtual library with the catalog of ``catalog_url``."""
    from pytp.catalog.config import read_config

    return read_config(write_library_config(tmp_path / "site", catalog_url), "--config")


@pytest.fixture
def sqlite_lib_config(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    from pytp.catalog.config import read_config

    return read_config(write_library_config(tmp_path / "site", sqlite_url), "--config")


def make_tree(root: Path, big_file: int = 2 << 20) -> Path:
    """A source tree with every kind of member pytp must round-trip."""
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "docs" / "report.txt").write_text("quarterly report\n")
    (root / "docs" / "deep" / "er" / "notes.md").write_text("# notes\n" * 100)
    (root / "empty.txt").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(big_file))
    (root / "link-to-report").symlink_to("docs/report.txt")
    os.link(root / "docs" / "report.txt", root / "hardlink-report.txt")
    long_dir = root / ("d" * 120) / ("e" * 100)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 90 + ".txt")).write_text("a path longer than 300 bytes\n")
    os.makedirs(os.fsencode(root) + b"/caf\xe9", exist_ok=True)
    with open(os.fsencode(root) + b"/caf\xe9/na\xefve-\xff.txt", "wb") as f:
        f.write(b"latin-1 name\n")
    (root / "unicode-é.txt").write_text("utf-8 name\n")
    os.chmod(root / "docs" / "report.txt", 0o640)
    os.utime(root / "docs" / "deep" / "er" / "notes.md", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return root


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "4m") -> Iterator[Path]:
    """A real file system of ``size`` mounted at ``path`` (created), for a full
    disk or a mount point: a tmpfs, unmounted after.  Needs root (CI runs as
    root); elsewhere the test skips loudly rather than pretend with a stub.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(f"SKIPPED LOUDLY: a {size} file system needs root to mount a tmpfs")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "pytp-test", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextlib.contextmanager
def unlistable_xattrs_file(name: str = "crowded.txt") -> Iterator[Path]:
    """A regular file whose extended attributes cannot be listed: a real cause of a
    ``partial`` job that works as root too (``listxattr`` fails with E2BIG on 400
    long names, which tmpfs takes).  Skips loudly where /dev/shm cannot do it.

    Yields the file; its directory is a scratch directory on /dev/shm, removed after.
    """
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("SKIPPED LOUDLY: needs a writable /dev/shm (tmpfs) for a file whose xattrs cannot be listed")
    with tempfile.TemporaryDirectory(dir=shm, prefix="pytp-test-") as scratch:
        crowded = Path(scratch) / name
        crowded.write_text("data survives\n")
        try:
            for i in range(400):
                os.setxattr(crowded, f"user.{'n' * 240}{i:04d}", b"v")
        except OSError as err:
            pytest.skip(f"SKIPPED LOUDLY: /dev/shm refused the 400 long xattr names the fault needs: {err}")
        yield crowded
