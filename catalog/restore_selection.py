"""What a restore extracts, held in bounded memory (issue 9), and its plan.

A restore of a whole job once held every entry as an object, several times
over (the selection, its sorted copy, the plan's items): gigabytes at a
million files.  Here the selection is one query, the newest version of each
path resolved in SQL, its rows streamed in tape order (tape, tape file,
offset) into a spool file, a batch at a time; every later pass (the check of
the target, the plan, the extraction, the checksums) reads the spool again,
one tape file's rows after another.  What stays in memory is per tape file
(its place in the spool, its block ranges) and per exception: hard links
whose target is not selected, members cut across tapes and their parts.
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, select

from pytp.tapeio.tarformat import padded

from .config import Config
from .copy_read import use_copies
from .devices import Selection
from .errors import NotFound, job_not_offered
from .integrity import check_offsets
from .inventory import locate_barcodes
from .light_sql import CoreReader
from .models import Entry, EntryPart, Job, JobStatus, TapeFile, Volume, row_id
from .parts import Piece, load_parts
from .plan import FilePlan, Item, RestorePlan, TapePlan, extend_ranges, merge_ranges, tape_order
from .search import AsOf, Found, FoundEntry, Related, _selection, find_exact, found_columns
from .search_query import other_hosts_hint
from .spool_file import SpoolFile

#: rows pickled together in the spool (and entry ids per query for their parts)
BATCH = 2_000
_FIELDS = len(FoundEntry._fields)
_ID = FoundEntry._fields.index("id")
_TAPE_FILE = FoundEntry._fields.index("tape_file_id")
_OFFSET = FoundEntry._fields.index("offset")
_PATH_TEXT = FoundEntry._fields.index("path_text")
_KIND = FoundEntry._fields.index("kind")
_SIZE = FoundEntry._fields.index("size")
_JOB = FoundEntry._fields.index("job_id")
_PATH = FoundEntry._fields.index("path")
_LINK = FoundEntry._fields.index("link_target")


@dataclass
class Query:
    """What to restore, as ``find`` takes it."""

    patterns: list[str] | None
    regex: bool
    job_id: int | None
    tape: str | None
    as_of: AsOf | None
    include_deleted: bool
    host: str | None

    def statement(self, session: Session, include_deleted: bool) -> Any:
        """The selected entries' columns and ``deleted_by``, in tape order (by tape label,
        tape file, offset): a plain select whose rows are :func:`found_columns` + deleted_by."""
        hits = _selection(
            session,
            self.patterns,
            regex=self.regex,
            job_id=self.job_id,
            tape=self.tape,
            all_versions=False,
            under=None,
            include_deleted=include_deleted,
            as_of=self.as_of,
            host=self.host,
        ).subquery("hits")
        return (
            select(*found_columns(), hits.c.deleted_by)
            .join(hits, hits.c.entry_id == Entry.id)
            .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
            .join(Volume, col(Volume.id) == TapeFile.volume_id)
            .order_by(col(Volume.label), col(TapeFile.file_number), col(Entry.offset), col(Entry.id))
        )

    def count(self, session: Session, include_deleted: bool) -> int:
        hits = self.statement(session, include_deleted).order_by(None).subquery()
        return int(session.connection().execute(select(func.count()).select_from(hits)).scalar_one())


@dataclass
class _Segment:
    """One tape file's rows in the spool: where its batches are, and what they hold."""

    tape_file_id: int
    #: spool positions of its batches, in offset order
    batches: list[int] = field(default_factory=list)
    rows: int = 0
    #: of those, members cut across tapes (read from their parts instead)
    split: int = 0
    #: block ranges read (first, last), merged by ``plan.extend_ranges``
    reads: list[tuple[int, int]] = field(default_factory=list)
    #: an entry of it whole in this tape file (no parts): what ``use_copies`` looks at
    sample: Found | None = None
    last: tuple[str, int] | None = None  # (path, offset) of its previous row, for check_offsets


class SelectionSpool:
    """The selected entries in tape order, spooled; iterate with :meth:`found` and :meth:`plan`.

    :param block_size: the drive's block size, for the block ranges of the plan.
    """

    def __init__(self, session: Session, block_size: int, job_id: int | None = None) -> None:
        self.session = session
        self.block_size = block_size
        self.related = Related(session)
        self.file = SpoolFile("the restore's selection", prefix="pytp-restore-")
        self.segments: dict[int, _Segment] = {}
        #: rows added after the query (hard-link targets outside it), by tape file, in offset order
        self.extra: dict[int, list[tuple[Any, ...]]] = {}
        self.count = 0
        self.bytes = 0
        #: the parts of members cut across tapes, and those members
        self.parts: dict[int, list[Piece]] = {}
        self.split: dict[int, Found] = {}
        #: (job id, path) each selected hard link needs beside it
        self.link_targets: set[tuple[int, bytes]] = set()
        #: every entry (of ``job_id``) that has parts: members cut across tapes are
        #: few in any catalog, and one query for them all costs less than asking
        #: for the parts of each batch of entries (profiled: ~50 µs a file)
        with_parts = select(EntryPart.entry_id).distinct()
        if job_id is not None:
            with_parts = with_parts.join(Entry, col(Entry.id) == EntryPart.entry_id).where(Entry.job_id == job_id)
        self.with_parts: set[int] = set(session.connection().execute(with_parts).scalars())

    def close(self) -> None:
        self.file.close()

    # ------------------------------------------------------------ filling
    def fill(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Spool ``rows`` (sorted by tape, tape file, offset), a batch at a time."""
        batch: list[tuple[Any, ...]] = []
        segment: _Segment | None = None
        for row in rows:
            row = tuple(row)
            if segment is None or row[_TAPE_FILE] != segment.tape_file_id:
                self._flush(segment, batch)
                batch = []
                segment = self.segments.setdefault(row[_TAPE_FILE], _Segment(row[_TAPE_FILE]))
            batch.append(row)
            if len(batch) >= BATCH:
                self._flush(segment, batch)
                batch = []
        self._flush(segment, batch)

    def _flush(self, segment: _Segment | None, batch: list[tuple[Any, ...]]) -> None:
        if segment is None or not batch:
            return
        split = [row[_ID] for row in batch if row[_ID] in self.with_parts]
        parts = load_parts(self.session, split) if split else {}
        self.parts.update(parts)
        for row in batch:
            self._account(segment, row, row[_ID] in parts)
        self.file.seek(0, 2)
        segment.batches.append(self.file.tell())
        pickle.dump(batch, self.file, protocol=pickle.HIGHEST_PROTOCOL)

    def _account(self, segment: _Segment, row: tuple[Any, ...], split: bool) -> None:
        """Count ``row``, check its offset, note what it needs, extend its tape file's block ranges."""
        self.count += 1
        segment.rows += 1
        if row[_KIND] == "file":
            self.bytes += row[_SIZE]
        if row[_KIND] == "hardlink" and row[_LINK] is not None:
            self.link_targets.add((row[_JOB], row[_LINK]))
        if split:
            segment.split += 1
            self.split[row[_ID]] = self.related.found(row, row[-1])
            return  # its parts are read where they are
        if segment.sample is None:
            segment.sample = self.related.found(row, row[-1])
        offset, path = row[_OFFSET], row[_PATH_TEXT]
        # Rows come in offset order, so a shared offset is the previous row's.
        if offset < 0 or (segment.last is not None and segment.last[1] == offset):
            found = self.related.found(row)
            where = f"tape file {found.tape_file.file_number} of {found.volume.label}"
            check_offsets(([segment.last] if segment.last else []) + [(path, offset)], where)
        segment.last = (path, offset)
        entry = FoundEntry(*row[:_FIELDS])
        extend_ranges(segment.reads, offset, entry.header_size + padded(entry.data_size), self.block_size)

    def add_missing_link_targets(self) -> None:
        """Add the files hard links of the selection link to that it does not hold.

        A hard link can only be extracted next to the file it links to.  One
        pass over the spool finds which targets are there; each missing one
        is looked up in its job (``find_exact``).
        """
        missing = set(self.link_targets)
        if not missing:
            return
        for found in self.found():
            missing.discard((found.job.id, found.entry.path))  # type: ignore[arg-type]
        for job_id, path in sorted(missing):
            target = find_exact(self.session, job_id, path)
            if target is None:
                continue
            row = (*target.entry, target.volume.id, None)
            segment = self.segments.setdefault(target.entry.tape_file_id, _Segment(target.entry.tape_file_id))
            parts = load_parts(self.session, [target.entry.id])
            self.parts.update(parts)
            self._account(segment, row, bool(parts))
            self.extra.setdefault(target.entry.tape_file_id, []).append(row)
        for rows in self.extra.values():
            rows.sort(key=lambda r: (r[_OFFSET], r[_ID]))

    # ------------------------------------------------------------ reading
    def _rows(self, segment: _Segment) -> Iterator[tuple[Any, ...]]:
        def spooled() -> Iterator[tuple[Any, ...]]:
            for position in segment.batches:
                self.file.seek(position)
                yield from pickle.load(self.file)

        extra = self.extra.get(segment.tape_file_id)
        if not extra:
            return spooled()
        return heapq.merge(spooled(), extra, key=lambda r: (r[_OFFSET], r[_ID]))

    def _in_order(self) -> list[_Segment]:
        """The tape files in tape order (label, file number), as the selection is sorted."""

        def key(segment: _Segment) -> tuple[str, int]:
            tape_file = self.related.tape_file(segment.tape_file_id)
            return self.related.volume(tape_file.volume_id).label, tape_file.file_number

        return sorted(self.segments.values(), key=key)

    def found(self) -> Iterator[Found]:
        """Every selected entry with its job and tape, in tape order (label, tape file, offset)."""
        for segment in self._in_order():
            for row in self._rows(segment):
                yield self.related.found(row, row[-1])

    def entries(self) -> Iterator[FoundEntry]:
        """Every selected entry alone, in the same order (what the target check and the checksums need)."""
        for segment in self._in_order():
            for row in self._rows(segment):
                yield FoundEntry(*row[:_FIELDS])

    # ------------------------------------------------------------ the plan
    def plan(self, config: Config, selection: Selection, locations: dict[str, Any] | None = None) -> RestorePlan:
        """The restore's plan (tapes ordered by ``plan.tape_order``, computed per tape file): each
        tape file's items are read from the spool when the restore gets there."""
        locations = locate_barcodes(config) if locations is None else locations
        loaded = None
        if selection.library is not None and selection.element is not None:
            name = selection.drive.name
            loaded = next((b for b, where in locations.items() if where.drive == name), None)
        # An original that is away (a vault, not in the library) is read from a copy
        # that is here: asked with one entry of each tape file, since only the tape
        # files matter to the choice.
        samples = [s.sample for s in self.segments.values() if s.sample is not None]
        swapped, parts, copies = use_copies(
            self.session, samples, self.parts, locations, loaded, bool(config.libraries)
        )
        where = {row_id(old.tape_file): (new.tape_file, new.volume) for old, new in zip(samples, swapped)}
        volumes: dict[int, Volume] = {}
        files: dict[tuple[int, int], _SpooledItems] = {}

        def items_at(tape_file: TapeFile, volume: Volume) -> _SpooledItems:
            volumes[row_id(volume)] = volume
            key = (row_id(volume), tape_file.file_number)
            if key not in files:
                files[key] = _SpooledItems(self, tape_file)
            return files[key]

        for segment in self.segments.values():
            if segment.sample is None:
                continue  # only members cut across tapes: their parts are placed below
            tape_file, volume = where[segment.tape_file_id]
            items_at(tape_file, volume).segments.append(segment)
        edges: set[tuple[int, int]] = set()
        for entry_id, pieces in parts.items():
            found = self.split.get(entry_id)
            if found is None:
                continue
            for part, tape_file, volume in pieces:
                items = items_at(tape_file, volume)
                items.pieces.append(Item(found.entry, part.offset, part.header_size + part.data_size, part))  # type: ignore[arg-type]
            for (_, _, a), (_, _, b) in zip(pieces, pieces[1:]):
                if a.id != b.id:
                    edges.add((row_id(a), row_id(b)))
        for (volume_id, file_number), items in files.items():
            items.finish(f"tape file {file_number} of {volumes[volume_id].label}")
        first = next((v.id for v in volumes.values() if loaded and v.barcode == loaded), None)
        tapes, missing = [], []
        for volume_id in tape_order(volumes, edges, first):
            volume = volumes[volume_id]
            place = locations.get(volume.barcode or "")
            if place is None and volume_id != first:
                missing.append(volume)
            location = "drive (loaded)" if volume_id == first else str(place) if place else "offline"
            tape = TapePlan(volume, location)
            for (vid, _), items in sorted(files.items(), key=lambda kv: kv[0]):
                if vid == volume_id:
                    tape.files.append(FilePlan(items.tape_file, items, items.ranges()))  # type: ignore[arg-type]
            tapes.append(tape)
        plan = RestorePlan(tapes, missing, self.block_size, self.count, config.planning)
        plan.copy_of, plan.fetch = copies.copy_of, copies.fetch
        return plan


class _SpooledItems:
    """The items of one tape file of a plan, read from the spool each time they are
    iterated, in offset order (``FilePlan.items``: sized and iterable, not a list)."""

    def __init__(self, spool: SelectionSpool, tape_file: TapeFile) -> None:
        self.spool = spool
        self.tape_file = tape_file
        self.segments: list[_Segment] = []
        #: parts of members cut across tapes that are in this tape file
        self.pieces: list[Item] = []

    def finish(self, where: str) -> None:
        self.pieces.sort(key=lambda item: item.offset)
        offsets = [(item.entry.path_text, item.offset) for item in self.pieces]
        if offsets:
            check_offsets(offsets, where)

    def ranges(self) -> list[tuple[int, int]]:
        pieces: list[tuple[int, int]] = []
        for item in self.pieces:
            extend_ranges(pieces, item.offset, item.length, self.spool.block_size)
        return merge_ranges([*pieces, *(r for s in self.segments for r in s.reads)])

    def __len__(self) -> int:
        return sum(s.rows - s.split for s in self.segments) + len(self.pieces)

    def __iter__(self) -> Iterator[Item]:
        split = self.spool.split
        whole = (
            _item(FoundEntry(*row[:_FIELDS]))
            for segment in self.segments
            for row in self.spool._rows(segment)
            if row[_ID] not in split
        )
        if not self.pieces:
            return whole
        return heapq.merge(whole, self.pieces, key=lambda item: item.offset)


def _item(entry: FoundEntry) -> Item:
    return Item(entry, entry.offset, entry.header_size + padded(entry.data_size))  # type: ignore[arg-type]


def spool_selection(session: Session, query: Query, block_size: int, notes: list[str] | None = None) -> SelectionSpool:
    """Spool what a restore extracts, hard-link targets included.

    Files a later backup recorded as deleted are left out unless
    ``include_deleted``; a selection that finds nothing else but names
    exactly one deleted file restores its last version (said in ``notes``).

    :raises NotFound: nothing matches.
    """
    spool = SelectionSpool(session, block_size, query.job_id)
    try:
        _fill(spool, query, notes)
        spool.add_missing_link_targets()
    except BaseException:
        spool.close()
        raise
    return spool


def _fill(spool: SelectionSpool, query: Query, notes: list[str] | None) -> None:
    session = spool.session
    rows = session.connection().execute(
        query.statement(session, query.include_deleted), execution_options={"yield_per": BATCH}
    )
    spool.fill(rows)
    if spool.count or query.include_deleted or query.as_of is not None:
        if not spool.count:
            _nothing(session, query)
        return
    deleted = session.connection().execute(query.statement(session, True).limit(2)).all()
    if len(deleted) == 1 and deleted[0][-1] is not None:
        spool.fill(deleted)
        found = spool.related.found(deleted[0], deleted[0][-1])
        if notes is not None:
            notes.append(
                f"{found.entry.path_text} was deleted (recorded by job {found.deleted_by.id}); "  # type: ignore[union-attr]
                f"restoring its last version, from job {found.job.id}."
            )
    elif deleted:
        hint = f"{query.count(session, True)} deleted file(s) match; add --include-deleted to restore them."
        raise NotFound(f"No backed-up file that still exists matches {', '.join(query.patterns or [])}. {hint}")
    else:
        _nothing(session, query)


def _nothing(session: Session, query: Query) -> None:
    if query.job_id is not None:
        _explain_job(session, query.job_id)
    what = ", ".join(query.patterns) if query.patterns else f"job {query.job_id}"
    hint = other_hosts_hint(CoreReader(session), query.host) or " Try `pytp search` with part of the name."
    raise NotFound(f"No backed-up file matches {what}.{hint}")


def _explain_job(session: Session, job_id: int) -> None:
    """Nothing was found in job ``job_id``: say so when the job is why (none such, or not good)."""
    job = session.get(Job, job_id)
    reason = job_not_offered(job_id, job.status if job is not None else None, JobStatus.GOOD)
    if reason is not None:
        raise reason
