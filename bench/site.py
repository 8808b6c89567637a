"""A throw-away pytp site for the benchmarks, built with pytp's own code.

The benchmarks run after a plain install (``pip install .``): they import
pytp only, never the tests or pytest.  The site is the embedded default a new
user gets, plus one large virtual library ``bench`` so a big source fits on
one tape.
"""

from __future__ import annotations

import os
from pathlib import Path

from pytp.catalog.config import Config, load_config, read_config
from pytp.catalog.libraries import add_virtual_library


def bench_site(directory: Path, *, tape_size: int, block_size: int) -> Config:
    """Create a site under ``directory`` and return its configuration.

    Points ``$XDG_CONFIG_HOME``/``$XDG_DATA_HOME`` (and clears ``$PYTP_*``) so
    that nothing of the user's own pytp set-up is read or written.
    """
    for var in ("PYTP_DEV", "PYTP_LIB", "PYTP_CONFIG", "PYTP_CATALOG_URL"):
        os.environ.pop(var, None)
    os.environ["XDG_CONFIG_HOME"] = str(directory / "config")
    os.environ["XDG_DATA_HOME"] = str(directory / "data")
    config = load_config()
    add_virtual_library(
        config, "bench", directory / "bench-lib", drives=1, slots=1, tapes=1, tape_size=tape_size, block_size=block_size
    )
    return read_config(config.path, "bench site")
