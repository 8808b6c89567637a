"""``--host NAME``: which host's jobs a catalog command looks at (issue 9).

Several hosts may share one PostgreSQL catalog.  The host is part of a path's
identity: by default a command sees only this host's jobs (the name from
``pytp.tapeio.procinfo.host_name``, which ``$PYTP_HOSTNAME`` overrides);
``--host all`` shows every host's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pytp.tapeio.procinfo import host_name

#: the ``--host`` value that means every host
ALL_HOSTS = "all"

F = TypeVar("F", bound=Callable[..., Any])


def host_option(func: F) -> F:
    """Add ``--host NAME`` (default: this host; ``all``: every host) as parameter ``host``."""
    return click.option(
        "--host",
        "host",
        metavar="NAME",
        help="Only jobs of this host (default: this host; 'all': every host sharing the catalog).",
    )(func)


def chosen_host(value: str | None) -> str | None:
    """The host to filter by, or None for every host."""
    if value is None:
        return host_name()
    return None if value == ALL_HOSTS else value
