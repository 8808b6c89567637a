"""Checks on catalog rows before a job trusts them to position the tape.

A member's offset says where its headers start in its tape file.  A negative
offset, or two members at one offset of one tape file, cannot come from a
backup: the rows were damaged or edited.  Restore and verify refuse such rows
by name before reading anything, instead of failing inside the tape reader
(issue 8, defect 11).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import CatalogInconsistent

#: how many bad rows a message lists before "and N more"
SHOWN = 5


def check_offsets(members: Iterable[tuple[str, int]], where: str) -> None:
    """Refuse impossible offsets among the members of one tape file.

    :param members: (path, offset) of each member read from the tape file.
    :param where: the tape file, for the message (``tape file 3 of PYT001L9``).
    :raises CatalogInconsistent: an offset is negative or used twice; every such path is named.
    """
    seen: dict[int, str] = {}
    bad: list[str] = []
    for path, offset in members:
        if offset < 0:
            bad.append(f"{path} (offset {offset} is negative)")
        elif offset in seen:
            bad.append(f"{path} (offset {offset} is also that of {seen[offset]})")
        else:
            seen[offset] = path
    if not bad:
        return
    more = f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    raise CatalogInconsistent(
        f"The catalog rows of {where} are inconsistent: {'; '.join(bad[:SHOWN])}{more}. "
        "Those members were not read. Recreate the catalog from its newest snapshot (`pytp catalog restore`) "
        "or from the tapes (`pytp catalog rebuild`)."
    )
