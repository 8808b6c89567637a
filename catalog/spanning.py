"""Carrying one source's archive across tapes.

``SpanningSink`` sits where the drive writer thread writes: it passes whole
blocks to the drive, and when the drive reports end of medium it asks the job
for the next tape, then goes on with the continuation that
``tapeio.continuation.plan_resume`` plans.  It keeps the parts (one tape file
each) and the cuts, so that once the source is done the catalog rows, which
the producer recorded in stream offsets of the first part, can be moved to
the tape file and offset where each member really is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from pytp.tapeio.continuation import MemberStart, Resume, plan_resume
from pytp.tapeio.drive import Drive
from pytp.tapeio.errors import EndOfMedium

from .models import Entry, EntryPart, TapeFile


@dataclass
class Part:
    """One tape file of a source's archive.

    :param base: the stream offset that is byte 0 of this tape file.
    :param first: the lowest stream offset of a member header placed in it.
    """

    tape_file: TapeFile
    base: int
    first: int


@dataclass(frozen=True)
class Cut:
    """A member whose data continues in part ``part`` after ``data_done`` bytes."""

    member: MemberStart
    part: int
    data_done: int
    header_size: int


class MemberStarts:
    """The member starts a cut may still fall into: those not wholly on tape yet.

    Spanning needs, at end of medium, only the member the cut falls in: the
    last one begun at or before it.  Keeping every start for the whole source
    held about half a KiB per file (issue 9: 853 MiB for a million files), so
    the writer thread drops a start as soon as the next member's header is on
    tape; what is left is the members still in the memory buffer.

    The producer appends (a ``deque`` append and the writer's
    ``popleft`` are atomic); a staged archive's starts come from a spool on
    disk instead, read as the writer gets to them (:meth:`follow`).
    """

    def __init__(self) -> None:
        self._window: deque[MemberStart] = deque()
        self._later: Iterator[MemberStart] | None = None

    def append(self, start: MemberStart) -> None:
        """A member's header is going out (producer thread)."""
        self._window.append(start)

    def follow(self, starts: Iterable[MemberStart]) -> None:
        """Take the starts from ``starts`` (in stream order), read only as far as the writer gets."""
        self._later = iter(starts)

    def __len__(self) -> int:
        return len(self._window)

    def advance(self, position: int) -> None:
        """Forget the members that end before stream offset ``position`` (writer thread)."""
        window = self._window
        if self._later is not None:
            while not window or window[-1].offset <= position:
                start = next(self._later, None)
                if start is None:
                    self._later = None
                    break
                window.append(start)
        while len(window) > 1 and window[1].offset <= position:
            window.popleft()

    def before(self, cut: int) -> list[MemberStart]:
        """The start ``plan_resume`` needs for a cut at ``cut``: the last one at or before it."""
        self.advance(cut)
        window = self._window
        return [window[0]] if window and window[0].offset <= cut else []


class SpanningSink:
    """Writes the stream of one source, moving to the next tape at end of medium.

    :param drive: the drive, positioned at the start of the first part.
    :param block_size: the tape block size.
    :param first: the tape file of the first part.
    :param next_tape: called (in the writer thread) with the resume plan when
        the tape is full; returns the drive positioned for the next part and
        that part's new tape file.
    """

    def __init__(
        self,
        drive: Drive,
        block_size: int,
        first: TapeFile,
        next_tape: Callable[[Resume, int], tuple[Drive, TapeFile]],
    ) -> None:
        self.drive = drive
        self.block_size = block_size
        self.next_tape = next_tape
        self.starts = MemberStarts()
        self.parts = [Part(first, 0, 0)]
        self.cuts: list[Cut] = []
        self._pending = bytearray()
        self._skip = 0  # stream bytes still to drop (the padding of a member finished before a cut)
        #: bytes of the current tape file that are on tape
        self.written = 0

    @property
    def stream_position(self) -> int:
        """Stream offset of the next byte to go to tape."""
        return self.parts[-1].base + self.written

    def write(self, chunk: bytes) -> None:
        """Take the next stream bytes (whole blocks of the original stream)."""
        view = memoryview(chunk)
        if self._skip:
            dropped = min(self._skip, len(view))
            view, self._skip = view[dropped:], self._skip - dropped
        if not self._pending and len(view) % self.block_size == 0:
            self._write_blocks(view)  # the usual case: no copy
        else:
            self._pending += view
            whole = len(self._pending) // self.block_size * self.block_size
            if whole:
                data = bytes(self._pending[:whole])
                del self._pending[:whole]
                self._write_blocks(memoryview(data))

    def finish(self) -> int:
        """Write what is left, padded to a block; return the last part's blocks."""
        if self._pending:
            self._pending += b"\0" * (-len(self._pending) % self.block_size)
            data = bytes(self._pending)
            self._pending.clear()
            self._write_blocks(memoryview(data))
        return self.written // self.block_size

    def _write_blocks(self, view: memoryview) -> None:
        while view:
            try:
                self.drive.write(view)
            except EndOfMedium as err:
                done = err.bytes_written
                done -= done % self.block_size
                self.written += done
                view = view[done:]
                view = self._switch(view)
            else:
                self.written += len(view)
                self.starts.advance(self.stream_position)
                return

    def _switch(self, rest: memoryview) -> memoryview:
        """Move to the next tape; return what to write there (prefix + the rest)."""
        if self.written == 0 and len(self.parts) > 1:
            # The new tape took nothing at all: do not go round in circles.
            raise EndOfMedium("The next tape was full before its first block; load tapes with room left.")
        cut = self.stream_position
        resume = plan_resume(self.starts.before(cut), cut)
        skip = resume.resume_at - cut
        if skip > len(rest):
            self._skip = skip - len(rest)
            rest = rest[len(rest) :]
        else:
            rest = rest[skip:]
        self.drive, tape_file = self.next_tape(resume, len(self.parts))
        base = resume.resume_at - len(resume.prefix)
        restart = bool(resume.prefix) and resume.member is None
        first = base if restart else resume.resume_at
        self.parts.append(Part(tape_file, base, first))
        if resume.member is not None:
            self.cuts.append(Cut(resume.member, len(self.parts) - 1, resume.data_done, len(resume.prefix)))
        self.written = 0
        data = bytes(resume.prefix) + bytes(rest)
        tail = len(data) % self.block_size
        if tail:
            # Keep the unaligned end for the next chunk, as write() would.
            self._pending[0:0] = data[len(data) - tail :]
            data = data[: len(data) - tail]
        return memoryview(data)


def place_entries(session: Session, job_id: int, parts: list[Part], cuts: list[Cut]) -> None:
    """Move the source's entries from first-part stream offsets to their real place.

    The producer records every member with its stream offset in the first
    part's tape file; members in later parts move to that part's tape file
    with ``offset - base``, and members cut in their data get ``EntryPart``s.
    """
    first_id = parts[0].tape_file.id
    for index in range(len(parts) - 1, 0, -1):
        part = parts[index]
        end = parts[index + 1].first if index + 1 < len(parts) else None
        condition = [
            Entry.job_id == job_id,
            Entry.tape_file_id == first_id,
            col(Entry.offset) >= part.first,
        ]
        if end is not None:
            condition.append(col(Entry.offset) < end)
        session.exec(  # type: ignore[call-overload]
            update(Entry).where(*condition).values(tape_file_id=part.tape_file.id, offset=Entry.offset - part.base)
        )
    by_member: dict[int, list[Cut]] = {}
    for cut in cuts:
        by_member.setdefault(cut.member.offset, []).append(cut)
    rows = []
    for stream_offset, member_cuts in by_member.items():
        home = max(i for i, p in enumerate(parts) if p.first <= stream_offset)
        entry = session.exec(
            select(Entry).where(
                Entry.job_id == job_id,
                Entry.tape_file_id == parts[home].tape_file.id,
                Entry.offset == stream_offset - parts[home].base,
            )
        ).first()
        if entry is None:
            continue  # the member was not stored intact (reported as a problem)
        member_cuts.sort(key=lambda c: c.part)
        done = [0] + [c.data_done for c in member_cuts] + [entry.data_size]
        pieces = [(parts[home].tape_file.id, entry.offset, entry.header_size)]
        pieces += [(parts[c.part].tape_file.id, 0, c.header_size) for c in member_cuts]
        for number, (tape_file_id, offset, header_size) in enumerate(pieces, start=1):
            rows.append(
                dict(
                    entry_id=entry.id,
                    part=number,
                    tape_file_id=tape_file_id,
                    offset=offset,
                    header_size=header_size,
                    data_start=done[number - 1],
                    data_size=done[number] - done[number - 1],
                )
            )
    if rows:
        session.execute(insert(EntryPart), rows)
    session.commit()
