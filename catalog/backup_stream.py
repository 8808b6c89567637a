"""The stream strategies: how each source's archive is produced and reaches the drive.

``direct`` produces the archive straight into the drive buffer; ``tar``
stages archives on disk first and writes them through the buffer; ``dd``
writes staged archives without it (catalog/staging.py).  All three give the
same bytes on tape and the same catalog, behind one method,
:meth:`Stream.write`.  What every source needs around its stream (its first
tape file, spanning onto further tapes, the catalog rows once it is done) is
:class:`SourceWriter`'s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from pytp.tapeio.blockio import BlockAssembler, ChunkPool, blocks_per_transfer
from pytp.tapeio.buffer import DriveWriter
from pytp.tapeio.continuation import Resume
from pytp.tapeio.tarformat import END_OF_ARCHIVE
from pytp.tapeio.tarwriter import ArchiveWriter, MemberRecord

from .backup_job import EntrySink, JobRecord
from .backup_options import BackupOptions
from .chain_state import ChainState
from .levels import Reference, has_changed
from .media import Media
from .models import TapeFile, path_text
from .progress import NULL
from .progress import Progress as ProgressEvents
from .spanning import SpanningSink
from .staging import RecordSpool, Staged, StagingArea, stage_source
from .tape_change import EndOfTape, NextTape, TapeChange

Select = Callable[[bytes, os.stat_result], bool]


class ProgressReporter:
    """Passes the job's progress to its listener (``catalog/progress.py``), cheaply.

    A member costs one call and two additions; the path is decoded only for a
    listener that shows paths (``--verbose``), and the buffer's fill (a lock)
    is sampled at most every :data:`FILL_SAMPLE_SECONDS`.
    """

    def __init__(self, events: ProgressEvents | None) -> None:
        self.events: ProgressEvents = events if events is not None else NULL
        self.active = events is not None and events is not NULL
        self.paths = self.active and self.events.wants_paths
        self.writer: DriveWriter | None = None
        self._sampled = 0.0

    def member(self, record: MemberRecord) -> None:
        if self.active:
            # The archive's bytes arrive through bytes(): a member adds none of its own.
            self.events.file(path_text(record.path) if self.paths else "", 0)

    def bytes(self, n: int) -> None:
        if self.active:
            self.events.bytes(n)
            writer = self.writer
            if writer is not None:
                now = time.monotonic()
                if now - self._sampled >= FILL_SAMPLE_SECONDS:
                    self._sampled = now
                    stats = writer.stats()
                    self.events.buffer_fill(stats.fill / stats.capacity if stats.capacity else 0.0)

    def report(self, force: bool = False) -> None:
        """A source ended: nothing to do (the listener redraws on its own clock)."""


#: how often the memory buffer's fill is read for the progress display
FILL_SAMPLE_SECONDS = 0.25


@dataclass
class OpenSource:
    """A source whose archive is being written: its first tape file and the spanning sink."""

    source: bytes
    first: TapeFile
    spanning: SpanningSink


class SourceWriter:
    """One source's archive to tape, from its first tape file to its rows in place."""

    def __init__(
        self,
        record: JobRecord,
        sink: EntrySink,
        media: Media,
        tapes: TapeChange,
        options: BackupOptions,
        progress: ProgressReporter,
    ) -> None:
        self.record = record
        self.sink = sink
        self.media = media
        self.tapes = tapes
        self.options = options
        self.progress = progress
        self.buffer_high_water = 0
        self.buffer_underruns = 0

    def begin(self, source: bytes) -> OpenSource:
        """Record the source's first tape file; the returned sink writes its stream."""
        block_size = self.media.block_size
        first = self.record.start_tape_file(self.media.drive, "data", source)
        self.sink.tape_file_id = first.id  # type: ignore[assignment]

        def end_of_tape(resume: Resume, part: int) -> NextTape:
            # The typed hand-off: the writer side says where the tape ended, the job side loads the next.
            event = EndOfTape(source, resume, spanning.parts[-1], spanning.written // block_size)
            return self.tapes.on_end_of_tape(event)

        spanning = SpanningSink(self.media.drive, block_size, first, end_of_tape)
        self.record.on_tape = lambda: (spanning.written, spanning.stream_position)
        return OpenSource(source, first, spanning)

    def buffer(self, opened: OpenSource, pool: ChunkPool | None = None) -> DriveWriter:
        """The memory buffer in front of the drive (its own thread writes to tape).

        :param pool: gets each chunk back once it is on tape.
        """
        writer = DriveWriter(
            opened.spanning.write,
            self.options.buffer_bytes,
            self.options.start_percent,
            self.media.drive.name,
            pool.give if pool is not None else None,
        )
        self.progress.writer = writer
        return writer

    def end(self, opened: OpenSource, reference: Reference | None, writer: DriveWriter | None) -> None:
        """The stream is done: close the tape file, put the rows in place, note deleted paths."""
        blocks = opened.spanning.finish()
        if writer is not None:
            stats = writer.stats()
            self.buffer_high_water = max(self.buffer_high_water, stats.high_water)
            self.buffer_underruns += stats.underruns
        self.media.drive.weof(1)
        self.sink.flush()
        self.record.complete(opened.spanning.parts[-1].tape_file, blocks, opened.source)
        self.record.on_tape = None
        self.record.place(opened.spanning.parts, opened.spanning.cuts)
        if reference is not None:
            # What was excluded is not part of the tree: not deleted (issue 11).
            self.record.record_deleted(opened.first, reference.state.missing())
        self.progress.report(force=True)

    def select(self, reference: Reference | None) -> Select | None:
        """Which paths an incremental or differential source takes (None: all)."""
        if reference is None:
            return None
        state, checksum = reference.state, self.options.checksum
        return lambda path, st: has_changed(state.get(path), path, st, checksum)


def seen_paths(reference: Reference | None) -> ChainState | None:
    """What the walk tells of the paths it finds (to find the deleted ones): the reference's state, if any."""
    return reference.state if reference is not None else None


class Stream(Protocol):
    """A strategy: writes every source's archive to tape, in order."""

    def write(self, sources: list[bytes], references: dict[bytes, Reference]) -> None: ...


class DirectStream:
    """``direct``: the archive is produced straight into the drive buffer."""

    def __init__(self, out: SourceWriter) -> None:
        self.out = out

    def write(self, sources: list[bytes], references: dict[bytes, Reference]) -> None:
        for source in sources:
            self._write_source(source, references.get(source))

    def _write_source(self, source: bytes, reference: Reference | None) -> None:
        out, record = self.out, self.out.record
        opened = out.begin(source)
        # The chunks the drive writer has written come back to be filled again (no new
        # memory). When the drive is faster than the files come, the buffer runs dry and
        # refills to its start level again and again: keep that many.
        chunk = blocks_per_transfer(out.media.block_size) * out.media.block_size
        start_level = out.options.buffer_bytes * out.options.start_percent // 100
        pool = ChunkPool(keep=max(16, start_level // chunk + 2))
        writer = out.buffer(opened, pool)
        blocks = BlockAssembler(writer.put, out.media.block_size, pool)
        archive = ArchiveWriter(
            blocks, out.sink.add, record.problems.append, out.progress.bytes, opened.spanning.starts.append
        )
        try:
            archive.add_tree(source, out.select(reference), out.options.exclude, seen_paths(reference))
            blocks.write(END_OF_ARCHIVE)
            blocks.finish()
            writer.close()
        except BaseException:
            writer.abort()
            raise
        out.end(opened, reference, writer)


class StagedStream:
    """``tar`` and ``dd``: archives staged on disk, ``max_concurrent_tars`` at once, written in order.

    :param buffered: through the memory buffer (``tar``) or straight to the drive (``dd``).
    """

    def __init__(self, out: SourceWriter, buffered: bool) -> None:
        self.out = out
        self.buffered = buffered

    def write(self, sources: list[bytes], references: dict[bytes, Reference]) -> None:
        out = self.out
        concurrent = max(1, out.options.max_concurrent_tars)
        with StagingArea(out.media.config.tar_dir, out.record.job_id) as area:
            area.check_space(sources, concurrent)
            with ThreadPoolExecutor(max_workers=concurrent, thread_name_prefix="pytp-stage") as pool:
                futures = [
                    pool.submit(
                        stage_source,
                        area,
                        index,
                        source,
                        out.media.block_size,
                        out.select(references.get(source)),
                        out.progress.bytes,
                        out.options.exclude,
                        seen_paths(references.get(source)),
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

    def _write_staged(self, staged: Staged, reference: Reference | None) -> None:
        out = self.out
        opened = out.begin(staged.source)
        opened.spanning.starts.follow(staged.starts)
        out.record.problems.extend(staged.problems)
        for record in staged.records:
            out.sink.add(record)
        writer = out.buffer(opened) if self.buffered else None
        chunk = blocks_per_transfer(out.media.block_size) * out.media.block_size
        try:
            with open(staged.path, "rb") as archive:
                while data := archive.read(chunk):
                    (writer.put if writer else opened.spanning.write)(data)
            if writer:
                writer.close()
        except BaseException:
            if writer:
                writer.abort()
            raise
        finally:
            staged.path.unlink(missing_ok=True)
            for spool in (staged.records, staged.starts):
                if isinstance(spool, RecordSpool):
                    spool.remove()
        out.end(opened, reference, writer)


def make_stream(strategy: str, out: SourceWriter) -> Stream:
    """The stream strategy named ``strategy`` (one of ``backup_options.STRATEGIES``)."""
    if strategy == "direct":
        return DirectStream(out)
    return StagedStream(out, buffered=strategy == "tar")
