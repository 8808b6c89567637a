"""The backup job: sources → one tar archive per source root → tape, plus manifest.

A job is ``running`` until its data and manifest are on tape and the
filemarks written; only then is it ``ok`` (or ``partial`` when some paths were
skipped, each of them recorded).  Entries are inserted in batches while the
data streams; search and restore ignore them until the job is good.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from pytp.tapeio.blockio import BlockAssembler, blocks_per_transfer
from pytp.tapeio.buffer import BufferStats, DriveWriter
from pytp.tapeio.continuation import Resume
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import BufferAborted, EndOfMedium, TapeIOError
from pytp.tapeio.smallarchive import write_small_archive
from pytp.tapeio.tarformat import END_OF_ARCHIVE
from pytp.tapeio.tarwriter import ArchiveWriter, MemberRecord, Problem

from .config import Config
from .devices import Selection, drive_lock
from .errors import CatalogError, SourceError, TapeFull, WrongTape
from .levels import DELETED, Reference, has_changed, reference_for
from .manifest import MANIFEST_MEMBER, header_line, manifest_lines, stream_part_lines
from .media import Media, NoTapeAvailable, position_at_end_of_data
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
    utcnow,
)
from .reconcile import process_fields
from .spanning import SpanningSink, place_entries
from .staging import Staged, StagingArea, stage_source

ENTRY_BATCH = 2000
LEVELS = ("full", "incremental", "differential")
STRATEGIES = ("direct", "tar", "dd")


@dataclass
class BackupOptions:
    """What to back up and how.

    :param sources: directories or files; each becomes one tape file.
    :param job_name: ``--job``: the name of the backup chain.
    :param job_label: ``--label``: the original pytp's label for the chain.
    :param pool: the pool to write to (default: the configured default pool).
    :param buffer_bytes: size of the memory buffer in front of the drive.
    :param start_percent: the drive starts once the buffer is this full.
    """

    sources: list[str]
    job_name: str | None = None
    job_label: str | None = None
    level: str = "full"
    strategy: str = "direct"
    pool: str | None = None
    buffer_bytes: int = 256 << 20
    start_percent: int = 20
    low_water_mark: int = 10
    #: incremental/differential: also compare content (xxh3) when metadata agrees
    checksum: bool = False
    #: tar strategy: how many archives are staged at once
    max_concurrent_tars: int = 2
    #: a drive without changer fills up: show the request, return once the
    #: operator inserted a tape (False gives up); None fails the job instead
    ask_for_tape: Callable[[str], bool] | None = None


@dataclass
class Progress:
    files: int = 0
    bytes: int = 0
    source: str = ""
    buffer: BufferStats | None = None


@dataclass
class BackupResult:
    job_id: int
    status: str
    files: int
    bytes: int
    seconds: float
    tapes: list[str]
    tape_files: list[tuple[str, int, str, int]]  # (tape, file number, source, blocks)
    problems: list[tuple[str, str]] = field(default_factory=list)
    buffer_high_water: int = 0
    buffer_underruns: int = 0
    level: str = "full"
    deleted: int = 0
    notes: list[str] = field(default_factory=list)


def normalise_sources(sources: list[str]) -> list[bytes]:
    """Absolute source paths as bytes; each must exist.

    :raises SourceError: a source is missing (nothing is written then).
    """
    if not sources:
        raise SourceError("Name at least one directory or file to back up.")
    result: list[bytes] = []
    missing = []
    for source in sources:
        raw = os.fsencode(source)
        absolute = os.path.normpath(os.path.abspath(raw))
        if not os.path.lexists(absolute):
            missing.append(source)
        elif absolute not in result:
            result.append(absolute)
    if missing:
        raise SourceError(f"Source not found: {', '.join(missing)}. Nothing was written; check the path.")
    return result


class _EntrySink:
    """Collects member records into catalog rows, inserted in batches.

    Rows carry the member's offset in the archive stream of the source's first
    tape file; ``spanning.place_entries`` moves them once the source is done.
    The writer thread flushes too (before a part manifest), hence the lock.
    """

    def __init__(self, engine: Engine, job_id: int, on_member: Callable[[MemberRecord], None]) -> None:
        self.engine = engine
        self.job_id = job_id
        self.on_member = on_member
        self.rows: list[dict[str, object]] = []
        self.tape_file_id = 0
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, record: MemberRecord) -> None:
        # MemberRecord's fields are Entry's columns, by design.
        row = dict(vars(record), job_id=self.job_id, tape_file_id=self.tape_file_id, path_text=path_text(record.path))
        with self._lock:
            self.rows.append(row)
            self.files += 1
            self.bytes += record.size
            full = len(self.rows) >= ENTRY_BATCH
        self.on_member(record)
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self.rows = self.rows, []
            if rows:
                with Session(self.engine) as session:
                    session.execute(insert(Entry), rows)
                    session.commit()


def run_backup(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: BackupOptions,
    progress: Callable[[Progress], None] | None = None,
) -> BackupResult:
    """Back up ``options.sources`` to a tape of the pool, recording everything.

    :param engine: the open catalog.
    :param config: the effective configuration.
    :param selection: the drive (and library) to write with.
    :param options: sources and job options.
    :param progress: called now and then with the running totals.
    :raises SourceError: a source is missing (nothing written).
    :raises TapeFull: the tape filled up; the job is marked failed.
    :raises WrongTape: no usable tape, or the tape disagrees with the catalog.
    """
    if options.level not in LEVELS:
        raise CatalogError(f"Unknown level '{options.level}'; use one of {', '.join(LEVELS)}.")
    if options.strategy not in STRATEGIES:
        raise CatalogError(f"Unknown strategy '{options.strategy}'; use one of {', '.join(STRATEGIES)}.")
    sources = normalise_sources(options.sources)
    pool = options.pool or config.default_pool
    config.pool(pool)
    started = time.monotonic()
    # The drive is taken before the job row exists: a busy drive leaves no job behind.
    with (
        drive_lock(selection.drive),
        Media(config, selection) as media,
        Session(engine, expire_on_commit=False) as session,
    ):
        job = Job(
            name=options.job_name,
            label=options.job_label,
            level=options.level,
            strategy=options.strategy,
            pool=pool,
            **process_fields(),  # type: ignore[arg-type]
            sources=json.dumps([path_text(s) for s in sources]),
        )
        session.add(job)
        session.commit()
        state = _JobState(engine, session, job, media, options, progress)
        try:
            with _interrupt_as_exception():
                state.run(sources, pool)
        except BaseException as err:
            try:
                state.fail(err)
            except Exception:  # noqa: BLE001 - e.g. a full catalog disk: the next
                pass  # command reconciles the job (reconcile.py); the original error matters
            translated = _translate(err, state)
            if translated is err:
                raise
            raise translated from err
    return state.result(time.monotonic() - started)


class _JobState:
    """The running job: what has been written where, so failures are recorded exactly.

    ``self.session`` belongs to the main thread, except while a source streams:
    then only the writer thread uses it (to move to the next tape), and the
    main thread only produces data and inserts entries with sessions of its own.
    """

    def __init__(self, engine, session, job, media, options, progress) -> None:  # type: ignore[no-untyped-def]
        self.engine: Engine = engine
        self.session: Session = session
        self.job: Job = job
        self.media: Media = media
        self.options: BackupOptions = options
        self.progress = progress
        self.pool = options.pool or ""
        self.volume: Volume | None = None
        self.current: TapeFile | None = None
        self.problems: list[Problem] = []
        self.tape_files: list[tuple[str, int, str, int]] = []
        self.buffer_high_water = 0
        self.buffer_underruns = 0
        self._progress = Progress()
        self._last_report = 0.0
        self._writer: DriveWriter | None = None
        self._spanning: SpanningSink | None = None
        self.notes: list[str] = []
        self.deleted = 0
        self.sink = _EntrySink(engine, job.id, self._on_member)  # type: ignore[arg-type]

    def _on_member(self, record: MemberRecord) -> None:
        self._progress.files += 1
        self._report()

    def _on_bytes(self, n: int) -> None:
        self._progress.bytes += n
        self._report()

    def _report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report >= 1.0:
            self._last_report = now
            self._progress.buffer = self._writer.stats() if self._writer else None
            self.progress(self._progress)

    def run(self, sources: list[bytes], pool: str) -> None:
        self.pool = pool
        references = self._references(sources)
        self.volume = self.media.mount_for_append(self.session, pool)
        ensure_block_size(self.media.drive, self.media.block_size)
        if self.options.strategy == "direct":
            for source in sources:
                self._write_source(source, references.get(source))
        else:
            self._write_sources_staged(sources, references)
        self._write_manifest(final=True)
        self._finish()

    def _references(self, sources: list[bytes]) -> dict[bytes, Reference]:
        """What each source is compared with; a source without a full base is backed up in full."""
        level = self.job.level
        if level == "full":
            return {}
        references = {}
        for source in sources:
            reference = reference_for(self.session, self.job.name, self.job.label, source, level)
            if reference is None:
                self.notes.append(f"{path_text(source)}: no full backup in this chain yet, so it is backed up in full")
            else:
                references[source] = reference
                since = "its full job" if level == "differential" else "the chain's good jobs since full job"
                self.notes.append(f"{path_text(source)}: {level} against {since} {reference.base_job}")
        if not references:
            # Nothing to be incremental to: the job is a full backup, and is recorded as one
            # so that later incrementals and point-in-time restores start from it.
            self.job.level = "full"
            self.session.add(self.job)
            self.session.commit()
        return references

    def _start_tape_file(self, kind: str, source: bytes | None) -> TapeFile:
        assert self.volume is not None
        number = position_at_end_of_data(self.session, self.media.drive, self.volume)
        tape_file = TapeFile(
            job_id=self.job.id,
            volume_id=self.volume.id,  # type: ignore[arg-type]
            file_number=number,
            kind=kind,
            source_root=source,
            block_size=self.media.block_size,
        )
        # Record the file before its first block goes to tape, so a crash
        # leaves a row the next append can reconcile with what is on tape.
        self.volume.file_count = number + 1
        self.volume.last_written_at = utcnow()
        self.session.add_all([tape_file, self.volume])
        self.session.commit()
        self.current = tape_file
        return tape_file

    def _complete(self, tape_file: TapeFile, blocks: int, source: bytes | None) -> None:
        """The tape file is on tape, filemark included: record its size."""
        assert self.volume is not None
        tape_file.blocks = blocks
        tape_file.total_bytes = blocks * self.media.block_size
        tape_file.status = TapeFileStatus.COMPLETE
        self.volume.bytes_written += tape_file.total_bytes
        self.session.add_all([tape_file, self.volume])
        self.session.commit()
        self.current = None
        if source is not None:
            self.tape_files.append((self.volume.label, tape_file.file_number, path_text(source), blocks))

    def _write_sources_staged(self, sources: list[bytes], references: dict[bytes, Reference]) -> None:
        """Stage up to ``max_concurrent_tars`` archives at once; write them in order."""
        concurrent = max(1, self.options.max_concurrent_tars)
        with StagingArea(self.media.config.tar_dir, self.job.id) as area:
            area.check_space(sources, concurrent)
            with ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="pytp-stage") as pool:
                futures = [
                    pool.submit(
                        stage_source,
                        area,
                        index,
                        source,
                        self.media.block_size,
                        self._select(references.get(source)),
                        self._on_bytes,
                    )
                    for index, source in enumerate(sources)
                ]
                try:
                    for source, future in zip(sources, futures):
                        self._write_staged(future.result(), references.get(source))
                except BaseException:
                    area.cancelled.set()
                    for future in futures:
                        future.cancel()
                    raise

    def _select(self, reference: Reference | None) -> Callable[[bytes, os.stat_result], bool] | None:
        if reference is None:
            return None
        state, checksum = reference.state, self.options.checksum
        return lambda path, st: has_changed(state.get(path), path, st, checksum)

    def _begin_source(self, source: bytes) -> tuple[TapeFile, SpanningSink]:
        first = self._start_tape_file("data", source)
        self.sink.tape_file_id = first.id  # type: ignore[assignment]
        self._progress.source = path_text(source)
        spanning = self._spanning = SpanningSink(
            self.media.drive, self.media.block_size, first, lambda resume, part: self._next_tape(source, resume)
        )
        return first, spanning

    def _write_source(self, source: bytes, reference: Reference | None = None) -> None:
        """The direct strategy: produce the archive straight into the drive buffer."""
        first, spanning = self._begin_source(source)
        writer = self._writer = DriveWriter(
            spanning.write, self.options.buffer_bytes, self.options.start_percent, self.media.drive.name
        )
        out = BlockAssembler(writer.put, self.media.block_size)
        archive = ArchiveWriter(out, self.sink.add, self.problems.append, self._on_bytes, spanning.starts.append)
        try:
            seen = archive.add_tree(source, self._select(reference))
            out.write(END_OF_ARCHIVE)
            out.finish()
            writer.close()
        except BaseException:
            writer.abort()
            raise
        self._end_source(source, first, spanning, reference, seen, writer)

    def _write_staged(self, staged: Staged, reference: Reference | None) -> None:
        """The tar and dd strategies: a staged archive to tape, with or without the buffer."""
        first, spanning = self._begin_source(staged.source)
        spanning.starts.extend(staged.starts)
        self.problems.extend(staged.problems)
        for record in staged.records:
            self.sink.add(record)
        writer = None
        if self.options.strategy == "tar":
            writer = self._writer = DriveWriter(
                spanning.write, self.options.buffer_bytes, self.options.start_percent, self.media.drive.name
            )
        chunk = blocks_per_transfer(self.media.block_size) * self.media.block_size
        try:
            with open(staged.path, "rb") as archive:
                while data := archive.read(chunk):
                    (writer.put if writer else spanning.write)(data)
            if writer:
                writer.close()
        except BaseException:
            if writer:
                writer.abort()
            raise
        finally:
            staged.path.unlink(missing_ok=True)
        self._end_source(staged.source, first, spanning, reference, staged.seen, writer)

    def _end_source(
        self,
        source: bytes,
        first: TapeFile,
        spanning: SpanningSink,
        reference: Reference | None,
        seen: set[bytes],
        writer: DriveWriter | None,
    ) -> None:
        blocks = spanning.finish()
        if writer is not None:
            stats = writer.stats()
            self.buffer_high_water = max(self.buffer_high_water, stats.high_water)
            self.buffer_underruns += stats.underruns
        self.media.drive.weof(1)
        self.sink.flush()
        self._complete(spanning.parts[-1].tape_file, blocks, source)
        place_entries(self.session, self.job.id, spanning.parts, spanning.cuts)  # type: ignore[arg-type]
        if reference is not None:
            self._record_deleted(first, sorted(set(reference.state) - seen))
        self._spanning = None
        self._report(force=True)

    def _record_deleted(self, tape_file: TapeFile, paths: list[bytes]) -> None:
        """Paths the chain had and this backup did not see: deleted since."""
        empty = dict(size=0, mode=0, uid=0, gid=0, uname="", gname="", mtime_ns=0, ctime_ns=0, inode=0, device=0)
        rows = [
            dict(
                empty,
                job_id=self.job.id,
                tape_file_id=tape_file.id,
                path=path,
                path_text=path_text(path),
                kind=DELETED,
                offset=-1,
                header_size=0,
            )
            for path in paths
        ]
        if rows:
            self.session.execute(insert(Entry), rows)
            self.session.commit()
        self.deleted += len(rows)

    def _next_tape(self, source: bytes, resume: Resume) -> tuple[Drive, TapeFile]:
        """End of medium (in the writer thread): close this tape, go on on the next.

        The full tape's part manifest is the first file after the next tape's
        label, before the rest of the data (docs/format.md, "Spanning"): it
        never has to fit in the full tape's early-warning zone.
        """
        assert self.volume is not None and self._spanning is not None
        drive = self.media.drive
        drive.weof(1)  # filemarks still fit in the early-warning zone
        full_part = self._spanning.parts[-1]
        self._complete(full_part.tape_file, self._spanning.written // self.media.block_size, source)
        self.sink.flush()
        full = self._change_tape()
        self._write_manifest(final=False, cut=resume, describes=full)
        return self.media.drive, self._start_tape_file("data", source)

    def _change_tape(self) -> Volume:
        """Mark the tape full and mount the next appendable tape of the pool; return the full one."""
        assert self.volume is not None
        full = self.volume
        full.status = VolumeStatus.FULL
        self.session.add(full)
        self.session.commit()
        if self.media.changer is None:
            self.volume = self._ask_for_tape(full.label)
        else:
            try:
                self.volume = self.media.mount_for_append(self.session, self.pool)
            except NoTapeAvailable as err:
                raise TapeFull(
                    f"Tape {full.label} is full and no other tape of pool '{self.pool}' can take the rest of job "
                    f"{self.job.id}, which failed: {err}"
                ) from err
        ensure_block_size(self.media.drive, self.media.block_size)
        return full

    def _ask_for_tape(self, full: str) -> Volume:
        """A drive without changer: eject the full tape and ask the operator for the next one."""
        drive_name = self.media.selection.drive.name
        self.media.drive.offline()
        self.media.close()  # let go of the drive while the operator swaps tapes
        request = (
            f"Tape {full} is full. Insert a blank tape or an appendable tape of pool '{self.pool}' "
            f"into drive {drive_name} to continue job {self.job.id}."
        )
        while True:
            if self.options.ask_for_tape is None or not self.options.ask_for_tape(request):
                raise TapeFull(f"{request} Nobody could be asked (no terminal), so the job failed.")
            try:
                return self.media.mount_for_append(self.session, self.pool)
            except (WrongTape, TapeIOError) as err:
                request = f"That tape cannot be used: {err} Insert another one into drive {drive_name}."

    def _manifest_header(self, final: bool, describes: Volume | None = None) -> dict[str, object]:
        assert self.volume is not None
        header: dict[str, object] = {
            "id": self.job.id,
            "uuid": self.job.uuid,
            "name": self.job.name,
            "label": self.job.label,
            "level": self.job.level,
            "pool": self.job.pool,
            "host": self.job.host,
            "strategy": self.job.strategy,
            "started_at": self.job.started_at.isoformat(),
            "written_at": utcnow().isoformat(),
            "sources": json.loads(self.job.sources),
            "volume": {"label": self.volume.label, "uuid": self.volume.uuid},
            "final": final,
            "tape_files": [
                {"tape": tape, "file": number, "source": source, "blocks": blocks}
                for tape, number, source, blocks in self.tape_files
            ],
            "problems": [{"path": path_text(p.path), "message": p.message} for p in self.problems],
        }
        if describes is not None:
            # A part manifest on the tape after the full one it describes.
            header["describes"] = {"label": describes.label, "uuid": describes.uuid}
        return header

    def _write_manifest(self, final: bool, cut: Resume | None = None, describes: Volume | None = None) -> None:
        """The manifest: the whole job after its data, a full tape's part on the next tape.

        :param describes: for a part manifest, the full tape whose part it lists.
        """
        assert self.volume is not None
        with tempfile.TemporaryFile() as spool:
            if final:
                lines = manifest_lines(self.session, self.job.id)
            else:
                assert self._spanning is not None and cut is not None and describes is not None
                # The full tape's part: sources done on it, then the source cut there.
                lines = itertools.chain(
                    manifest_lines(self.session, self.job.id, describes.id, self.sink.tape_file_id),
                    stream_part_lines(self.session, self.job.id, self.sink.tape_file_id, self._spanning.parts[-1], cut),
                )
            for line in lines:
                spool.write(line)
            body = spool.tell()
            while True:
                header = header_line(self._manifest_header(final, describes))
                spool.seek(0)
                pieces = itertools.chain([header], iter(lambda: spool.read(1 << 20), b""))
                tape_file = self._start_tape_file("manifest", None)
                try:
                    blocks = write_small_archive(
                        self.media.drive, self.media.block_size, MANIFEST_MEMBER, pieces, size=len(header) + body
                    )
                except EndOfMedium as err:
                    if tape_file.file_number <= 1:
                        # It started right after a label: it does not fit on a whole tape.
                        raise TapeFull(
                            f"The manifest of job {self.job.id} ({len(header) + body} bytes) does not fit on "
                            f"tape {self.volume.label} after its label; use larger tapes for this job."
                        ) from err
                    # The tape filled before the manifest did (the job's data ended
                    # near its end, or it held other jobs): the manifest goes to
                    # the next tape, never into the early-warning zone.
                    self._withdraw(tape_file)
                    self._change_tape()
                    continue
                break
        self._complete(tape_file, blocks, None)

    def _withdraw(self, tape_file: TapeFile) -> None:
        """Erase a manifest cut short by end of medium: the tape ends after the data before it.

        ``bsfm(2)`` closes the cut file and comes back to the start of the
        data file before it; spacing over that file's blocks and writing a
        filemark there rewrites its closing filemark, so end of data follows
        it and no partial manifest (nor an empty file) is left on the tape.
        """
        assert self.volume is not None
        before = self.session.exec(
            select(TapeFile).where(
                TapeFile.volume_id == self.volume.id, TapeFile.file_number == tape_file.file_number - 1
            )
        ).one()
        drive = self.media.drive
        drive.bsfm(2)
        drive.fsr(before.blocks)
        drive.weof(1)
        tape_file.status = TapeFileStatus.ABSENT
        self.volume.file_count = tape_file.file_number
        self.session.add_all([tape_file, self.volume])
        self.session.commit()
        self.current = None

    def _finish(self) -> None:
        self._close_job(JobStatus.PARTIAL if self.problems else JobStatus.OK)

    def _close_job(self, status: str, message: str | None = None) -> None:
        """Record the job's end: its status, totals and every problem path."""
        job = self.job
        job.status = status
        job.message = message
        job.ended_at = utcnow()
        job.files = self.sink.files
        job.total_bytes = self.sink.bytes
        job.problems = len(self.problems)
        self.session.add(job)
        self._record_problems()
        self.session.commit()

    def _record_problems(self) -> None:
        if self.problems:
            self.session.execute(
                insert(JobProblem),
                [
                    dict(job_id=self.job.id, path=p.path, path_text=path_text(p.path), message=p.message)
                    for p in self.problems
                ],
            )

    def fail(self, err: BaseException) -> None:
        """Mark the job failed and the tape file incomplete; keep what reached the catalog."""
        self.session.rollback()
        try:
            self.sink.flush()
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        cause = err.__cause__ if isinstance(err, BufferAborted) and err.__cause__ else err
        if self.current is not None:
            self.current.status = TapeFileStatus.INCOMPLETE
            self.session.add(self.current)
            if isinstance(cause, EndOfMedium) and self.volume is not None:
                self.volume.status = VolumeStatus.FULL
                self.session.add(self.volume)
                try:
                    # Close the cut tape file with a filemark (allowed in the
                    # early-warning zone) so the tape stays well formed.
                    self.media.drive.weof(1)
                except TapeIOError:
                    pass
        self._close_job(JobStatus.FAILED, _describe(cause))

    def result(self, seconds: float) -> BackupResult:
        return BackupResult(
            job_id=self.job.id,  # type: ignore[arg-type]
            status=self.job.status,
            files=self.sink.files,
            bytes=self.sink.bytes,
            seconds=seconds,
            tapes=sorted({t for t, *_ in self.tape_files}),
            tape_files=self.tape_files,
            problems=[(path_text(p.path), p.message) for p in self.problems],
            buffer_high_water=self.buffer_high_water,
            buffer_underruns=self.buffer_underruns,
            level=self.job.level,
            deleted=self.deleted,
            notes=self.notes,
        )


def _describe(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return str(err) or type(err).__name__


def _translate(err: BaseException, state: _JobState) -> BaseException:
    cause = err.__cause__ if isinstance(err, BufferAborted) and err.__cause__ else err
    if isinstance(cause, EndOfMedium):
        label = state.volume.label if state.volume else "?"
        return TapeFull(f"Tape {label} is full; job {state.job.id} failed and is not offered for restore. {cause}")
    if isinstance(cause, (TapeIOError, CatalogError, KeyboardInterrupt)):
        return cause
    return err


class _interrupt_as_exception:
    """Turn SIGTERM into KeyboardInterrupt so a killed job is marked failed too."""

    def __enter__(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread (e.g. inside a test runner thread)
            self._previous = None

    @staticmethod
    def _raise(signum, frame) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
