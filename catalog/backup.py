"""The backup job: sources → one tar archive per source root → tape, plus manifest.

A job is ``running`` until its data and manifest are on tape and the
filemarks written; only then is it ``ok`` (or ``partial`` when some paths were
skipped, each of them recorded).  Entries are inserted in batches while the
data streams; search and restore ignore them until the job is good.

:func:`run_backup` is the life of a backup; the parts it is made of:

- ``backup_job``: the job record (catalog bookkeeping) and the entry sink;
- ``backup_stream``: the stream strategies (direct, tar, dd) and what every
  source needs around its stream;
- ``tape_change``: the end-of-tape hand-off between the drive writer and the job;
- ``manifest_writer``: the manifest, streamed from the catalog to tape.
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import NoReturn

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.errors import BufferAborted, EndOfMedium, TapeIOError

from .backup_job import EntrySink, JobRecord
from .backup_options import LEVELS, STRATEGIES, BackupOptions, BackupResult, Progress
from .backup_stream import ProgressReporter, SourceWriter, make_stream
from .config import Config
from .devices import Selection
from .errors import CatalogError, SourceError, TapeFull
from .health_log import HealthWatch
from .manifest_writer import Spool, manifest_lines, place_manifest
from .media import Media, open_media
from .models import Job, JobStatus, path_text
from .progress import Progress as ProgressEvents
from .tape_change import TapeChange

__all__ = ["BackupOptions", "BackupResult", "Progress", "normalise_sources", "run_backup"]


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


def run_backup(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: BackupOptions,
    progress: ProgressEvents | None = None,
) -> BackupResult:
    """Back up ``options.sources`` to a tape of the pool, recording everything.

    :param engine: the open catalog.
    :param config: the effective configuration.
    :param selection: the drive (and library) to write with.
    :param options: sources and job options.
    :param progress: the listener of the job's progress (``catalog/progress.py``); its
        totals are the previous good job of the same sources and level (no pre-walk).
    :raises SourceError: a source is missing (nothing written).
    :raises TapeFull: the tape filled up; the job is marked failed.
    :raises WrongTape: no usable tape, or the tape disagrees with the catalog.
    """
    _check_options(options)
    sources = normalise_sources(options.sources)
    pool = options.pool or config.default_pool
    config.pool(pool)
    with _gc_frozen():
        return _run(engine, config, selection, options, progress, sources, pool)


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """The objects alive before the job (modules, the ORM's metadata) are left out of
    the garbage collector's passes while it runs, and given back after.

    A job of many files allocates a few objects per file, and every so often
    the collector walks everything alive: a tenth of a small file's backup
    went there, half of it over what had been imported (issue 9).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run(
    engine: Engine,
    config: Config,
    selection: Selection,
    options: BackupOptions,
    progress: ProgressEvents | None,
    sources: list[bytes],
    pool: str,
) -> BackupResult:
    started = time.monotonic()
    reporter = ProgressReporter(progress)
    # The drive is taken before the job row exists: a busy drive leaves no job behind.
    with (
        open_media(config, selection, keep_loaded=options.keep_loaded) as media,
        HealthWatch(engine, media) as health,
    ):
        record = JobRecord.create(engine, options, sources, pool, media.block_size)
        health.job_ids.append(record.job_id)
        with EntrySink(engine, record.job_id, reporter.member) as sink:
            tapes = TapeChange(record, media, sink, pool, options.ask_for_tape)
            out = SourceWriter(record, sink, media, tapes, options, reporter)
            try:
                with interrupt_as_exception(), ExitStack() as cleanup:
                    references = record.references(sources)
                    for reference in references.values():
                        cleanup.callback(reference.close)  # their states' temporary databases
                    tapes.first_tape()
                    if reporter.active:  # drawn once the tape is mounted and data is about to flow
                        reporter.events.start("backup", *previous_totals(engine, record.job))
                    make_stream(options.strategy, out).write(sources, references)
                    with Spool(manifest_lines(engine, record.job_id)) as spool:
                        place_manifest(record, media, spool, tapes.change_tape, final=True)
                    record.close(sink)
                    reporter.events.done()
            except BaseException as err:
                reporter.events.done()
                translated = _fail(err, record, sink, media)
                if translated is err:
                    raise
                raise translated from err
    return _result(record, sink, out, time.monotonic() - started)


def previous_totals(engine: Engine, job: Job) -> tuple[int | None, int | None]:
    """Files and bytes of the newest good job of the same sources, level, host and name.

    The progress display's ETA: walking the sources twice would double the
    cost of a job of millions of files, and the last run of the same job is a
    good guess.  ``(None, None)`` without one: the display then shows no ETA.
    """
    with Session(engine) as session:
        query = (
            select(Job)
            .where(
                Job.sources == job.sources,
                Job.level == job.level,
                Job.host == job.host,
                Job.name == job.name if job.name is not None else col(Job.name).is_(None),
                col(Job.status).in_([JobStatus.OK, JobStatus.PARTIAL]),
                Job.id != job.id,
            )
            .order_by(col(Job.id).desc())
            .limit(1)
        )
        previous = session.exec(query).first()
    return (previous.files, previous.total_bytes) if previous is not None else (None, None)


def _check_options(options: BackupOptions) -> None:
    if options.level not in LEVELS:
        raise CatalogError(f"Unknown level '{options.level}'; use one of {', '.join(LEVELS)}.")
    if options.strategy not in STRATEGIES:
        raise CatalogError(f"Unknown strategy '{options.strategy}'; use one of {', '.join(STRATEGIES)}.")


def _result(record: JobRecord, sink: EntrySink, out: SourceWriter, seconds: float) -> BackupResult:
    return BackupResult(
        job_id=record.job_id,
        status=record.job.status,
        files=sink.files,
        bytes=sink.bytes,
        seconds=seconds,
        tapes=sorted({t for t, *_ in record.tape_files}),
        tape_files=record.tape_files,
        problems=[(path_text(p.path), p.message) for p in record.problems],
        buffer_high_water=out.buffer_high_water,
        buffer_underruns=out.buffer_underruns,
        level=record.job.level,
        deleted=record.deleted,
        notes=record.notes,
    )


def _fail(err: BaseException, record: JobRecord, sink: EntrySink, media: Media) -> BaseException:
    """Record the failure; return the error to raise (``err`` itself, or a clearer one)."""
    cause = err.__cause__ if isinstance(err, BufferAborted) and err.__cause__ else err
    try:
        record.fail(cause, _describe(cause), sink, media)
    except Exception:  # noqa: BLE001 - e.g. a full catalog disk: the next
        pass  # command reconciles the job (reconcile.py); the original error matters
    if isinstance(cause, EndOfMedium):
        label = record.volume.label if record.volume else "?"
        return TapeFull(f"Tape {label} is full; job {record.job_id} failed and is not offered for restore. {cause}")
    if isinstance(cause, (TapeIOError, CatalogError, KeyboardInterrupt)):
        return cause
    return err


def _describe(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    return str(err) or type(err).__name__


class interrupt_as_exception:
    """Turn SIGTERM into KeyboardInterrupt so a killed job is marked failed too."""

    def __enter__(self) -> None:
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread (e.g. inside a test runner thread)
            self._previous = None

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
