"""A throw-away pytp site for one benchmark run, made with pytp's own commands.

Each sandbox has its own configuration file, catalog (SQLite) and one virtual
library with one drive and one tape big enough for any data set, at the
default 512 KiB block size.  It is built through the command line
(``pytp library add-virtual``), like a user would, so the benchmark depends on
no internal API and runs after a plain install.  The user's own configuration
and data directory are never read: ``$XDG_*`` point into the sandbox and every
``$PYTP_*`` variable is dropped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .measure import BenchError


def pytp_command() -> list[str]:
    """The installed ``pytp`` of this Python, else the module (same code, same start-up)."""
    beside = Path(sys.executable).with_name("pytp")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("pytp")
    return [found] if found else [sys.executable, "-m", "pytp.cli.main"]


class Sandbox:
    """A site under ``root``: ``config.json``, ``catalog.db``, library ``lib/``."""

    def __init__(self, root: Path, *, tape_size: str = "8192G", library: Path | None = None) -> None:
        """:param library: where the virtual library (its tapes) goes; default ``root/lib``.

        A real drive takes the bytes through ``write()``; a virtual tape is a
        file, so where it lies (a disk, or memory) is part of what is measured.
        """
        self.root = root
        root.mkdir(parents=True)
        self.library = library if library is not None else root / "lib"
        self.config = root / "config.json"
        self.catalog = root / "catalog.db"
        # PYTHONDONTWRITEBYTECODE would make every measured start compile pytp from
        # source; an installed pytp has its bytecode, so the bench lets it be cached.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PYTP_") and k != "PYTHONDONTWRITEBYTECODE"}
        self.env.update(
            XDG_CONFIG_HOME=str(root / "xdg-config"),
            XDG_DATA_HOME=str(root / "xdg-data"),
            PYTP_CONFIG=str(self.config),
        )
        self.write_catalog_url(self.catalog)
        self.call(
            "library", "add-virtual", "bench", "--path", str(self.library),
            "--drives", "1", "--slots", "2", "--tapes", "2", "--tape-size", tape_size,
        )  # fmt: skip
        # Create the catalog now, so no measured run pays for the schema.
        self.call("tapes")

    def write_catalog_url(self, path: Path) -> None:
        """Point the configuration at the SQLite catalog ``path`` (keeps the rest)."""
        import json

        data = json.loads(self.config.read_text()) if self.config.exists() else {}
        data["catalog"] = {"url": f"sqlite:///{path}"}
        self.config.write_text(json.dumps(data, indent=2))

    def argv(self, *args: str) -> list[str]:
        return [*pytp_command(), *args]

    def call(self, *args: str) -> str:
        """Run a pytp command unmeasured (set-up); its standard output."""
        done = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"pytp {' '.join(args)} exited with {done.returncode}:\n{done.stderr.strip()}")
        return done.stdout

    def tapes_dir(self) -> Path:
        return self.library / "tapes"

    def used_tape(self) -> Path:
        """The directory of the one tape that holds data (barcodes are pytp's choice)."""
        for tape in sorted(self.tapes_dir().iterdir()):
            if (tape / "file-00001").exists():
                return tape
        raise BenchError(f"No tape of {self.tapes_dir()} holds data.")

    def tape_file(self, number: int) -> Path:
        return self.used_tape() / f"file-{number:05d}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.library, ignore_errors=True)
