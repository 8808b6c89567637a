"""The newest-version rule of search, restore and ``versions``, once.

A path's rows come newest first.  Its version is the first row that is not a
deletion marker; a marker seen before it names the job that found the path
gone, and a path deleted that way is left out unless deletions are asked for.
A path is its bytes *and* its host, so the rows of one ``path_text`` can hold
several paths: the caller says what the key is.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

Row = TypeVar("Row")


def newest_versions(
    rows: Iterable[Row],
    key: Callable[[Row], Hashable],
    deleting_job: Callable[[Row], int | None],
    include_deleted: bool,
) -> Iterator[tuple[Row, int | None]]:
    """``(row, deleted_by)`` for the newest version of each path among ``rows``
    (the rows of one ``path_text``, newest first).

    :param key: the path a row is a version of (its host and bytes).
    :param deleting_job: the row's job when the row is a deletion marker, else None.
    :param include_deleted: also give a deleted path's last version, with ``deleted_by`` set.
    """
    paths: dict[Hashable, int | bool | None] = {}  # path → None (picked) or the deleting job
    for row in rows:
        path = key(row)
        deleted_by = paths.get(path, False)
        if deleted_by is None:
            continue  # its version was picked
        deletion = deleting_job(row)
        if deleted_by is False:  # the path's newest row
            deleted_by = deletion
        if deletion is not None:
            paths.setdefault(path, deleted_by)
            continue
        paths[path] = None
        if deleted_by is not None and not include_deleted:
            continue
        yield row, deleted_by  # type: ignore[misc]
