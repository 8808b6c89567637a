"""Which tape of a library a backup to a pool tries next: a pure function.

The order (issue 10: pool choice in one place, testable without a drive):
appendable tapes of the pool first, the most recently written before the
others (a job continues where the last one ended, and tapes fill one at a
time); then blank cartridges the pool may take; and only when nothing else
is left, tapes of the pool whose data has left retention and that nothing
else protects, the one that expired first before the others.  ``Media``
loads the candidates in this order and uses the first that checks out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pytp.tapeio.changer import StorageElement

from .models import Volume, VolumeStatus


@dataclass(frozen=True)
class Candidate:
    """A tape to try: in ``slot``; ``volume`` None for a blank cartridge.

    :param reuse: an expired tape of the pool, to be labelled again.
    """

    slot: int
    volume: Volume | None = None
    reuse: bool = False


def pool_candidates(
    slots: Iterable[StorageElement],
    volumes: Mapping[str, Volume],
    pool: str,
    accepts: Callable[[str | None], bool],
    retention_ends: Mapping[int, datetime | None],
    protected: Collection[int],
    now: datetime,
) -> list[Candidate]:
    """The tapes to try for an append to ``pool``, in order.

    :param slots: the library's storage elements (import/export slots are never used).
    :param volumes: the catalog's tapes by barcode.
    :param accepts: whether a blank cartridge with that barcode may join the pool.
    :param retention_ends: by volume id, when the tape's newest good data leaves
        retention (None: no data, or kept forever); tapes not listed are not reused.
    :param protected: ids of tapes something else protects (a catalog snapshot...).
    :param now: the time retention is measured against.
    """
    stored = [s for s in slots if s.full and not s.import_export]
    # Copy tapes (``pytp copy``) are never appended to nor recycled by a backup: they mirror their source.
    ours = [
        (volumes[s.barcode], s.number)
        for s in stored
        if s.barcode in volumes and volumes[s.barcode].pool == pool and volumes[s.barcode].copy_of_id is None
    ]
    appendable = sorted(
        ((v, n) for v, n in ours if v.status == VolumeStatus.APPENDABLE),
        key=lambda vn: vn[0].last_written_at or vn[0].created_at,
        reverse=True,
    )
    blanks = [
        s.number
        for s in stored
        if not s.is_cleaning and (s.barcode is None or s.barcode not in volumes) and accepts(s.barcode)
    ]
    expired = sorted(
        (
            (end, v, n)
            for v, n in ours
            for end in [retention_ends.get(v.id)]  # type: ignore[arg-type]
            if end is not None and end <= now and v.id not in protected
        ),
        key=lambda item: item[0],
    )
    return (
        [Candidate(n, v) for v, n in appendable]
        + [Candidate(n) for n in blanks]
        + [Candidate(n, v, reuse=True) for _, v, n in expired]
    )
