"""The job record: a backup's catalog bookkeeping and nothing else.

``JobRecord`` keeps the job row, the tape files it writes, its problems and
its deleted paths, and closes or fails the job.  Every method opens a session
of its own, one at a time under a lock: the end-of-tape hand-off
(``tape_change``) runs in the drive writer thread while the producer inserts
entries on the main thread, and no session is ever shared between threads.
The ORM objects it keeps (job, volume, tape file) are detached between
calls and re-attached by the next one.

``EntrySink`` turns member records into ``Entry`` rows, inserted with one
executemany per :data:`ENTRY_BATCH` rows on a thread of its own, so no
per-file row is held longer than a batch or two.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import case, delete, func, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.drive import Drive
from pytp.tapeio.errors import EndOfMedium, TapeIOError
from pytp.tapeio.tarwriter import MemberRecord, Problem

from .backup_options import BackupOptions
from .entry_insert import insert_rows, stored_row
from .levels import DELETED, Reference, reference_for
from .media import Media, position_at_end_of_data
from .models import (
    Entry,
    Job,
    JobProblem,
    JobStatus,
    TapeFile,
    TapeFileStatus,
    Volume,
    VolumeStatus,
    path_text,
    row_id,
    utcnow,
)
from .reconcile import process_fields
from .spanning import Cut, Part, place_entries

ENTRY_BATCH = 2000
#: batches that may wait for the inserter thread before the producer waits too
PENDING_BATCHES = 2


class EntrySink:
    """Collects member records into catalog rows, inserted in batches on a thread of their own.

    Rows carry the member's offset in the archive stream of the source's first
    tape file; ``spanning.place_entries`` moves them once the source is done.
    Each batch is one executemany, run by the sink's inserter thread, so
    neither the producer nor the drive writer waits for the catalog; at most
    :data:`PENDING_BATCHES` batches wait, so memory stays bounded.  The tape
    change flushes too (before a part manifest), hence the lock.  Use it as a
    context manager: leaving it stops the inserter thread.
    """

    def __init__(self, engine: Engine, job_id: int, on_member: Callable[[MemberRecord], None]) -> None:
        self.engine = engine
        self.job_id = job_id
        self.on_member = on_member
        self.rows: list[tuple[object, ...]] = []
        self.tape_file_id = 0
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pytp-entries")
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> EntrySink:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inserter.shutdown(wait=True)

    def add(self, record: MemberRecord) -> None:
        with self._lock:
            self.rows.append(stored_row(self.job_id, self.tape_file_id, record))
            self.files += 1
            self.bytes += record.size
            if len(self.rows) >= ENTRY_BATCH:
                self._submit(PENDING_BATCHES)
        self.on_member(record)

    def flush(self) -> None:
        """Insert every row collected so far; return once they are in the catalog.

        :raises Exception: what an insert raised (a full disk, a lost server).
        """
        with self._lock:
            self._submit(0)

    def _submit(self, pending: int) -> None:
        rows, self.rows = self.rows, []
        if rows:
            self._pending.append(self._inserter.submit(self._insert, rows))
        while len(self._pending) > pending:
            self._pending.popleft().result()

    def _insert(self, rows: list[tuple[object, ...]]) -> None:
        with self.engine.begin() as connection:
            insert_rows(connection, rows)


class JobRecord:
    """What the catalog knows of the running job, recorded as it happens.

    :param volume: the tape being written (None before the first mount).
    :param current: the tape file being written, marked incomplete if the job fails.
    """

    def __init__(self, engine: Engine, job: Job, block_size: int) -> None:
        self.engine = engine
        self.job = job
        self.block_size = block_size
        self.volume: Volume | None = None
        self.current: TapeFile | None = None
        self.problems: list[Problem] = []
        self.tape_files: list[tuple[str, int, str, int]] = []
        self.notes: list[str] = []
        self.deleted = 0
        #: while a source's stream is written: (bytes of the current tape file on
        #: tape, stream offset of the next byte), read if the job fails
        self.on_tape: Callable[[], tuple[int, int]] | None = None
        self._lock = threading.RLock()

    @classmethod
    def create(
        cls, engine: Engine, options: BackupOptions, sources: list[bytes], pool: str, block_size: int
    ) -> JobRecord:
        """The job row, ``running`` from now on."""
        job = Job(
            name=options.job_name,
            label=options.job_label,
            level=options.level,
            strategy=options.strategy,
            pool=pool,
            **process_fields(),  # type: ignore[arg-type]
            sources=json.dumps([path_text(s) for s in sources]),
        )
        record = cls(engine, job, block_size)
        with record.session() as session:
            session.add(job)
            session.commit()
        return record

    @property
    def job_id(self) -> int:
        assert self.job.id is not None
        return self.job.id

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session of this call's own, the job and tape objects attached to it."""
        with self._lock, Session(self.engine, expire_on_commit=False) as session:
            session.add(self.job)
            for obj in (self.volume, self.current):
                if obj is not None:
                    session.add(obj)
            yield session

    def references(self, sources: list[bytes]) -> dict[bytes, Reference]:
        """What each source is compared with; a source without a full base is backed up in full."""
        level = self.job.level
        if level == "full":
            return {}
        references = {}
        with self.session() as session:
            for source in sources:
                reference = reference_for(session, self.job.name, self.job.label, source, level, self.job.host)
                if reference is None:
                    self.notes.append(
                        f"{path_text(source)}: no full backup in this chain yet, so it is backed up in full"
                    )
                else:
                    references[source] = reference
                    since = "its full job" if level == "differential" else "the chain's good jobs since full job"
                    self.notes.append(f"{path_text(source)}: {level} against {since} {reference.base_job}")
            if not references:
                # Nothing to be incremental to: the job is a full backup, and is recorded as one
                # so that later incrementals and point-in-time restores start from it.
                self.job.level = "full"
                session.commit()
        return references

    def mount(self, media: Media, pool: str) -> Volume:
        """Load (and label if blank) an appendable tape of ``pool``; it becomes the tape written."""
        with self.session() as session:
            self.volume = media.mount_for_append(session, pool)
        return self.volume

    def start_tape_file(self, drive: Drive, kind: str, source: bytes | None) -> TapeFile:
        """Record the next tape file before its first block goes to tape.

        So a crash leaves a row the next append can reconcile with what is on tape.
        """
        volume = self.volume
        assert volume is not None
        with self.session() as session:
            number = position_at_end_of_data(session, drive, volume)
            tape_file = TapeFile(
                job_id=self.job_id,
                volume_id=row_id(volume),
                file_number=number,
                kind=kind,
                source_root=source,
                block_size=self.block_size,
            )
            volume.file_count = number + 1
            volume.last_written_at = utcnow()
            session.add(tape_file)
            session.commit()
        self.current = tape_file
        return tape_file

    def complete(self, tape_file: TapeFile, blocks: int, source: bytes | None) -> None:
        """The tape file is on tape, filemark included: record its size."""
        volume = self.volume
        assert volume is not None
        with self.session() as session:
            session.add(tape_file)
            tape_file.blocks = blocks
            tape_file.total_bytes = blocks * self.block_size
            tape_file.status = TapeFileStatus.COMPLETE
            volume.bytes_written += tape_file.total_bytes
            session.commit()
        self.current = None
        if source is not None:
            self.tape_files.append((volume.label, tape_file.file_number, path_text(source), blocks))

    def mark_full(self) -> Volume:
        """The tape written is full; return it (the next mount replaces it)."""
        full = self.volume
        assert full is not None
        with self.session() as session:
            full.status = VolumeStatus.FULL
            session.commit()
        return full

    def withdraw(self, tape_file: TapeFile, drive: Drive) -> None:
        """Erase a manifest cut short by end of medium: the tape ends after the data before it.

        ``bsfm(2)`` closes the cut file and comes back to the start of the
        data file before it; spacing over that file's blocks and writing a
        filemark there rewrites its closing filemark, so end of data follows
        it and no partial manifest (nor an empty file) is left on the tape.
        """
        volume = self.volume
        assert volume is not None
        with self.session() as session:
            before = session.exec(
                select(TapeFile).where(
                    TapeFile.volume_id == volume.id, TapeFile.file_number == tape_file.file_number - 1
                )
            ).one()
            drive.bsfm(2)
            drive.fsr(before.blocks)
            drive.weof(1)
            tape_file.status = TapeFileStatus.ABSENT
            volume.file_count = tape_file.file_number
            session.commit()
        self.current = None

    def place(self, parts: list[Part], cuts: list[Cut]) -> None:
        """Move a finished source's entries to the tape file and offset where each member is."""
        with self.session() as session:
            place_entries(session, self.job_id, parts, cuts)

    def record_deleted(self, tape_file: TapeFile, paths: Iterable[bytes]) -> None:
        """Paths the chain had and this backup did not see: deleted since.

        A marker row each, a batch at a time: a deleted tree can be millions of paths.
        """
        tape_file_id = row_id(tape_file)
        with self.session() as session:
            connection = session.connection()
            rows = (stored_row(self.job_id, tape_file_id, _deletion(path)) for path in paths)
            while batch := list(itertools.islice(rows, _DELETED_BATCH)):
                insert_rows(connection, batch)
                self.deleted += len(batch)
            session.commit()

    def close(self, sink: EntrySink, status: str | None = None, message: str | None = None) -> None:
        """Record the job's end: its status (default: ok, or partial with problems), totals, problem paths.

        A failed job's totals are those of its entries (what reached tape, ``fail``),
        not of every member read: the buffer held more than the drive took.
        """
        job = self.job
        # Skipped sockets and mount points not entered are notes: they do not make the job partial (issue 11).
        self.notes.extend(f"{path_text(p.path)}: {p.message}" for p in self.problems if p.note)
        self.problems = [p for p in self.problems if not p.note]
        with self.session() as session:
            job.status = status or (JobStatus.PARTIAL if self.problems else JobStatus.OK)
            job.message = message
            job.ended_at = utcnow()
            if job.status == JobStatus.FAILED:
                job.files, job.total_bytes = entry_totals(session, self.job_id)
            else:
                job.files, job.total_bytes = sink.files, sink.bytes
            job.problems = len(self.problems)
            if self.problems:
                session.execute(
                    insert(JobProblem),
                    [
                        dict(job_id=self.job_id, path=p.path, path_text=path_text(p.path), message=p.message)
                        for p in self.problems
                    ],
                )
            session.commit()

    def _keep_what_reached_tape(self, session: Session, drive: Drive, sink: EntrySink) -> None:
        """Record how much of the cut tape file is on tape, and drop the rows of members that are not.

        The buffer held members the drive never took; their rows would count
        them in the failed job (``pytp jobs``) though nothing of them is on
        tape.  The writer's own count says what reached tape (after a write
        error ``st`` no longer knows the block number); rows of the source
        being written still hold offsets in its stream (``spanning``).
        """
        current = self.current
        assert current is not None
        if self.on_tape is not None:
            written, position = self.on_tape()
            blocks = written // self.block_size
        else:  # a manifest: only the drive can tell
            try:
                status = drive.status()
            except TapeIOError:
                return
            if status.file_number != current.file_number or status.block_number < 0:
                return
            blocks, position = status.block_number, None
        current.blocks = blocks
        current.total_bytes = blocks * self.block_size
        if position is None:
            return
        stored = Entry.offset + Entry.header_size + case((col(Entry.sparse_map).is_(None), Entry.size), else_=0)
        session.execute(
            delete(Entry).where(
                Entry.job_id == self.job_id,
                Entry.tape_file_id == sink.tape_file_id,
                Entry.kind != DELETED,
                stored > position,
            )
        )

    def fail(self, cause: BaseException, message: str, sink: EntrySink, media: Media) -> None:
        """Mark the job failed and the tape file incomplete; keep what reached the catalog."""
        try:
            sink.flush()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        if self.current is not None:
            with self.session() as session:
                self.current.status = TapeFileStatus.INCOMPLETE
                self._keep_what_reached_tape(session, media.drive, sink)
                if isinstance(cause, EndOfMedium) and self.volume is not None:
                    self.volume.status = VolumeStatus.FULL
                    try:
                        # Close the cut tape file with a filemark (allowed in the
                        # early-warning zone) so the tape stays well formed.
                        media.drive.weof(1)
                    except TapeIOError:
                        pass
                session.commit()
        self.close(sink, JobStatus.FAILED, message)


def entry_totals(session: Session, job_id: int) -> tuple[int, int]:
    """A job's file count and bytes as its entries hold them (deleted-path markers aside)."""
    files, total = session.execute(
        select(func.count(), func.coalesce(func.sum(Entry.size), 0)).where(
            Entry.job_id == job_id, Entry.kind != DELETED
        )
    ).one()
    return int(files), int(total)


#: deletion markers inserted at a time
_DELETED_BATCH = 2000


def _deletion(path: bytes) -> MemberRecord:
    """The entry that says ``path`` was gone when the job ran (no data, offset -1)."""
    return MemberRecord(path, DELETED, 0, 0, 0, 0, "", "", 0, 0, 0, 0, None, None, -1, 0, None)
