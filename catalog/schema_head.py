"""The schema revisions this pytp knows, read from its migration files without alembic.

Every command that opens the catalog compares the catalog's ``alembic_version``
with the newest of these.  Asking alembic (``ScriptDirectory``) costs its whole
script and runtime machinery on every start, several times the rest of a
quick command (issue 9); the migration files themselves say the same in two
lines each (``revision = "0004"``, ``down_revision = "0003"``), so they are
read here with a regular expression, once per process.  The list is built
from the files that ship, so it cannot go stale when a migration is added;
``tests/cli/test_startup_imports.py`` checks that it agrees with alembic's own
reading.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from .errors import CatalogError

VERSIONS = Path(__file__).with_name("migrations") / "versions"
#: ``revision = "0004"`` or ``down_revision: str | None = "0003"`` (alembic's template), at the start of a line
_ASSIGNMENT = re.compile(r"^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(.*)$", re.MULTILINE)
#: the quoted revision ids in the right-hand side: None, "id", or a tuple of them (a merge)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


@cache
def revisions() -> dict[str, tuple[str, ...]]:
    """Every known revision and the revisions it follows (none for the first)."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        fields = {name: value for name, value in _ASSIGNMENT.findall(path.read_text(encoding="utf-8"))}
        if "revision" not in fields:
            continue  # __init__.py, a helper module
        ids = _QUOTED.findall(fields["revision"])
        if len(ids) != 1:
            raise CatalogError(f"The migration {path.name} has no single quoted revision id: this pytp is damaged.")
        found[ids[0]] = tuple(_QUOTED.findall(fields.get("down_revision", "None")))
    return found


@cache
def head_revision() -> str:
    """The newest revision: the one no other revision follows.

    :raises CatalogError: the migrations do not form one chain (a packaging bug).
    """
    known = revisions()
    followed = {parent for parents in known.values() for parent in parents}
    heads = sorted(set(known) - followed)
    if len(heads) != 1:
        raise CatalogError(
            f"The catalog migrations have {len(heads)} heads ({', '.join(heads)}): this pytp is damaged."
        )
    return heads[0]


def known_revision(revision: str) -> bool:
    """Whether this pytp's migrations include ``revision`` (an unknown one comes from a newer pytp)."""
    return revision in revisions()
