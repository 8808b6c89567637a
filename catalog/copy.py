"""``pytp copy``: block-exact second copies of tapes (issue 11, part 1).

A copy tape mirrors one source tape: its tape file N holds the very blocks of
the source's tape file N, at the same block size, so every catalog position
(tape file, byte offset) of every entry holds on the copy as well.  Tape file
0 is the copy's own volume label (its own label, barcode, uuid and pool),
which names the tape it mirrors.  The catalog gains one ``TapeFile`` row per
copied tape file (``copy_of_id`` → the source's row), not one row per file:
entries stay on the source's rows.

With two free drives in the library the source is read in one and the copy
written in the other, through the memory buffer (``tapeio.buffer``).  With one
drive, the source's tape files are staged in ``tar_dir`` (free space checked
first, staged files removed on every exit path) and written after the tapes
are swapped.  Every tape file written is read back and its xxh3 compared with
the source's blocks before its row says ``complete``.

A copy interrupted anywhere (kill -9, a tape error, a full tape) leaves its
last row ``writing`` or ``incomplete``, never ``complete``; the next copy
writes that tape file again from its start.  Copies do not span: a copy tape
too small for its source fails cleanly and is marked full.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.blockio import blocks_per_transfer
from pytp.tapeio.buffer import DriveWriter
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import BlankTape, BufferAborted, DriveBusy, EndOfMedium, ForeignTape, TapeIOError
from pytp.tapeio.hashing import ContentHasher
from pytp.tapeio.positioning import goto_file

from .config import Config
from .copy_select import CopyRefused, SourceTape, select_sources
from .devices import Selection
from .devices import select as select_drive
from .errors import ConfigError, TapeFull, VerifyFailed, WrongTape
from .inventory import locate_barcodes
from .media import Media, made_up_label, open_media
from .models import TapeFile, TapeFileStatus, Volume, VolumeStatus, row_id, utcnow
from .progress import NULL, Progress
from .staging import StagingArea
from .volumes import LabelClash, mark_error, pool_accepts

#: staged tape files leave this much of the staging file system free
STAGING_RESERVE = 64 << 20


@dataclass
class CopyOptions:
    """What to copy, to which pool, with which drives.

    :param pool: the pool of the copy tapes (not the source's pool).
    :param job_ids: copy the tape files these jobs need (``--job``).
    :param tapes: copy every complete tape file of these tapes (``--tape``).
    :param drive_from: the drive that reads the sources (default: chosen).
    :param drive_to: the drive that writes the copies (default: another free
        drive of the library; none free, or the same one: staging).
    :param library: the library holding sources and copy tapes.
    :param keep_loaded: leave the tapes in the drives afterwards (``--keep-loaded``);
        by default they go back to their slots, as after every job (issue 11).
    """

    pool: str
    job_ids: list[int] = field(default_factory=list)
    tapes: list[str] = field(default_factory=list)
    drive_from: str | None = None
    drive_to: str | None = None
    library: str | None = None
    keep_loaded: bool = False


@dataclass
class CopiedTape:
    """What one source tape's copy holds after the run."""

    source: str
    copy: str
    copy_barcode: str | None
    #: tape files copied by this run
    files: list[int] = field(default_factory=list)
    #: tape files the copy already held before this run
    already: int = 0
    bytes: int = 0
    jobs: list[int] = field(default_factory=list)
    #: jobs not asked for, copied to keep the tape file numbers
    other_jobs: list[int] = field(default_factory=list)
    new_tape: bool = False


@dataclass
class CopyResult:
    tapes: list[CopiedTape]
    #: "two drives" or "staging"
    mode: str
    drives: list[str]
    loads: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tapes)

    @property
    def files(self) -> int:
        return sum(len(t.files) for t in self.tapes)


@dataclass
class _Staged:
    tape_file: TapeFile
    path: Path
    digest: str
    blocks: int


def run_copy(engine: Engine, config: Config, options: CopyOptions, progress: Progress | None = None) -> CopyResult:
    """Copy the selected jobs' or tapes' tape files onto mirror tapes of ``options.pool``.

    :raises NotFound: a job or tape is unknown, or holds nothing to copy.
    :raises CopyRefused: the selection cannot be mirrored (see ``copy_select``).
    :raises ConfigError: no library, an unknown pool, or staging without ``tar_dir`` or space.
    :raises WrongTape: a source is not in the library, or no blank tape of the pool is.
    :raises TapeFull: a copy tape filled up before its source's last tape file.
    :raises VerifyFailed: a tape file read back from the copy differs from the source.
    """
    events = progress if progress is not None else NULL
    config.pool(options.pool)  # an unknown pool is a configuration error before any tape moves
    with Session(engine, expire_on_commit=False) as session:
        sources = select_sources(session, options.job_ids, options.tapes)
        for source in sources:
            if source.volume.pool == options.pool:
                raise CopyRefused(
                    f"Tape {source.volume.label} is in pool '{options.pool}' already; copy it to another pool "
                    "(a copy in the same pool does not help when that pool's tapes are lost)."
                )
    reader = select_drive(config, options.drive_from, options.library)
    if reader.library is None:
        raise ConfigError(
            f"Drive {reader.drive.name} is not in a library: `pytp copy` loads source and copy tapes through "
            "a changer. Name a library drive with --drive-from."
        )
    with ExitStack() as stack:
        read_media = stack.enter_context(open_media(config, reader, keep_loaded=options.keep_loaded))
        write_media = _second_drive(stack, config, reader, options.drive_to, options.keep_loaded)
        result = CopyResult(
            [],
            "two drives" if write_media is not None else "staging",
            [reader.drive.name] + ([write_media.selection.drive.name] if write_media is not None else []),
        )
        if write_media is None and not config.tar_dir:
            raise ConfigError(
                "Copying with one drive stages tape files in tar_dir; set tar_dir in the configuration, "
                "or give the copy a second drive (--drive-to)."
            )
        for source in sources:
            with Session(engine, expire_on_commit=False) as session:
                session.add(source.volume)
                copied = _copy_tape(session, config, options.pool, source, read_media, write_media, result, events)
            result.tapes.append(copied)
        result.loads = read_media.loads + (write_media.loads if write_media is not None else 0)
    return result


def _second_drive(
    stack: ExitStack, config: Config, reader: Selection, drive_to: str | None, keep_loaded: bool
) -> Media | None:
    """The writing drive's media, locked; None when the copy goes through staging on one drive."""
    library = reader.library
    assert library is not None
    if drive_to is not None:
        chosen = select_drive(config, drive_to, library.name)
        if chosen.drive.name == reader.drive.name:
            return None  # asked for one drive: staging
        return stack.enter_context(open_media(config, chosen, keep_loaded=keep_loaded))
    for index, name in enumerate(library.drives):
        if name == reader.drive.name:
            continue
        try:
            selection = Selection(config.drive(name), library, index)
            return stack.enter_context(open_media(config, selection, keep_loaded=keep_loaded))
        except DriveBusy:
            continue  # another pytp uses it: try the next, else stage
    return None


# finding and starting the mirror -------------------------------------------------


def _mirror(
    session: Session, source: Volume, pool: str, in_library: dict[str, object], reading: Volume | None = None
) -> Volume | None:
    """The appendable copy of ``source`` in ``pool`` that this library holds and that still mirrors it.

    A copy whose rows point at source rows no longer complete (the source was
    recycled since) mirrors nothing any more and is not continued.
    """
    copies = session.exec(
        select(Volume)
        .where(Volume.copy_of_id == source.id, Volume.pool == pool, Volume.status == VolumeStatus.APPENDABLE)
        .order_by(col(Volume.id).desc())
    ).all()
    for copy in copies:
        if reading is not None and copy.id == reading.id:
            continue  # the copy being read is not the one being written
        if copy.vault is not None or not copy.barcode or copy.barcode not in in_library:
            continue
        if not _stale(session, copy):
            return copy
    return None


def _stale(session: Session, copy: Volume) -> bool:
    """Whether a complete row of ``copy`` points at a source row that is no longer on the source tape."""
    rows = session.exec(
        select(TapeFile).where(TapeFile.volume_id == copy.id, TapeFile.status == TapeFileStatus.COMPLETE)
    ).all()
    for row in rows:
        original = session.get(TapeFile, row.copy_of_id) if row.copy_of_id is not None else None
        # A mirrored failed job's tape file points at an incomplete row: still on the source.
        if original is None or original.status not in (TapeFileStatus.COMPLETE, TapeFileStatus.INCOMPLETE):
            return True
    return False


def _copy_holds(session: Session, copy: Volume) -> int:
    """The last tape file the copy holds complete (0: only its label)."""
    last = session.exec(
        select(TapeFile.file_number)
        .where(TapeFile.volume_id == copy.id, TapeFile.status == TapeFileStatus.COMPLETE)
        .order_by(col(TapeFile.file_number).desc())
    ).first()
    return last or 0


def _label_blank(session: Session, config: Config, media: Media, pool: str, source: Volume) -> Volume:
    """Load a blank cartridge the pool accepts and label it as the copy of ``source``.

    :raises WrongTape: the library holds no such blank.
    """
    assert media.changer is not None
    known = {v.barcode for v in session.exec(select(Volume)).all() if v.barcode}

    def usable(barcode: str | None) -> bool:
        return barcode not in known and pool_accepts(config, pool, barcode)

    def label_here(barcode: str | None) -> Volume | None:
        try:
            if media.read_label() is not None:
                return None
        except ForeignTape:
            return None
        try:
            return media.write_label(
                session, text=barcode or made_up_label(), pool=pool, barcode=barcode, copy_of=source
            )
        except LabelClash:
            return None

    barcode = media.current_barcode()
    if barcode is not None and usable(barcode):
        volume = label_here(barcode)
        if volume is not None:
            return volume
    status = media.changer.status()
    for slot in status.slots:
        if not slot.full or slot.import_export or slot.is_cleaning or not usable(slot.barcode):
            continue
        media.load(slot.number)
        volume = label_here(slot.barcode)
        if volume is not None:
            return volume
    raise WrongTape(
        f"No blank tape for pool '{pool}' in library {media.changer.name} to start the copy of {source.label}. "
        "Put a blank cartridge into the library (see `pytp tapes`)."
    )


def _mount_copy(
    session: Session, config: Config, media: Media, pool: str, source: Volume, mirror: Volume | None
) -> tuple[Volume, bool]:
    """The mirror in ``media``'s drive, started on a blank when there is none; whether it is new."""
    if mirror is not None:
        media.mount(session, mirror)
        ensure_block_size(media.drive, source.block_size)
        return mirror, False
    copy = _label_blank(session, config, media, pool, source)
    ensure_block_size(media.drive, source.block_size)
    return copy, True


# one tape --------------------------------------------------------------------------


def _copy_tape(
    session: Session,
    config: Config,
    pool: str,
    source: SourceTape,
    read_media: Media,
    write_media: Media | None,
    result: CopyResult,
    events: Progress,
) -> CopiedTape:
    volume = source.volume
    in_library = locate_barcodes(config)
    mirror = _mirror(session, volume, pool, in_library, source.read_from)  # type: ignore[arg-type]
    have = _copy_holds(session, mirror) if mirror is not None else 0
    todo = [t for t in source.files if t.file_number > have]
    others = [t for t in source.files if t.file_number > have and t.job_id in source.other_jobs]
    if others:
        jobs = ", ".join(str(j) for j in sorted({t.job_id for t in others if t.job_id is not None}))
        result.notes.append(
            f"{volume.label}: tape file(s) {', '.join(str(t.file_number) for t in others)} of other job(s) {jobs} "
            "are copied too: a copy holds its source's tape files in order, so the numbering stays the same."
        )
    copied = CopiedTape(
        volume.label,
        mirror.label if mirror is not None else "",
        mirror.barcode if mirror is not None else None,
        already=have,
        jobs=list(source.jobs),
        other_jobs=list(source.other_jobs),
    )
    if not todo:
        events.note(f"{volume.label}: copy {copied.copy} already holds tape files 1-{have}")
        if mirror is None:  # pragma: no cover - a source always has files
            raise CopyRefused(f"Tape {volume.label}: nothing to copy.")
        return copied
    events.start(f"copy {volume.label}", len(todo), sum(t.total_bytes for t in todo), unit="tape files")
    if write_media is None:
        copy = _copy_staged(session, config, pool, source, mirror, todo, read_media, copied, events)
    else:
        copy = _copy_two_drives(session, config, pool, source, mirror, todo, read_media, write_media, copied, events)
    events.done()
    copy.last_verified_at = utcnow()
    copy.last_verify_result = "ok"
    copy.last_verify_message = (
        f"pytp copy: tape files {todo[0].file_number}-{todo[-1].file_number} read back after writing, "
        f"xxh3 equal to the source {volume.label}"
    )
    session.add(copy)
    session.commit()
    return copied


def _mount_source(session: Session, media: Media, volume: Volume) -> None:
    media.mount(session, volume)
    ensure_block_size(media.drive, volume.block_size)


def _copy_two_drives(
    session: Session,
    config: Config,
    pool: str,
    source: SourceTape,
    mirror: Volume | None,
    todo: list[TapeFile],
    read_media: Media,
    write_media: Media,
    copied: CopiedTape,
    events: Progress,
) -> Volume:
    volume = source.volume
    # The writing drive is closed while the source is mounted: if the source
    # sits in it, the reader's mount moves it out through the changer.
    write_media.close()
    _mount_source(session, read_media, source.reading)
    copy, copied.new_tape = _mount_copy(session, config, write_media, pool, volume, mirror)
    copied.copy, copied.copy_barcode = copy.label, copy.barcode
    for tape_file in todo:
        events.note(f"{volume.label} file {tape_file.file_number} -> {copy.label} ({tape_file.blocks} blocks)")
        goto_file(read_media.drive, tape_file.file_number)

        def feed(put: Callable[[bytes], None], tape_file: TapeFile = tape_file) -> tuple[str, int]:
            return _read_tape_file(read_media.drive, volume, tape_file, put)

        _write_copy_file(session, config, write_media.drive, copy, tape_file, feed, events=events)
        copied.files.append(tape_file.file_number)
        copied.bytes += tape_file.total_bytes
    return copy


def _copy_staged(
    session: Session,
    config: Config,
    pool: str,
    source: SourceTape,
    mirror: Volume | None,
    todo: list[TapeFile],
    media: Media,
    copied: CopiedTape,
    events: Progress,
) -> Volume:
    """One drive: stage as many tape files as fit, swap tapes, write them; again until done."""
    assert config.tar_dir
    volume = source.volume
    copy = mirror
    remaining = list(todo)
    with StagingArea(config.tar_dir, row_id(volume)) as area:
        while remaining:
            batch = _batch(area.path, remaining)
            _mount_source(session, media, source.reading)
            staged: list[_Staged] = []
            try:
                for tape_file in batch:
                    events.note(f"{volume.label} file {tape_file.file_number}: staging {tape_file.total_bytes} bytes")
                    staged.append(_stage(media.drive, volume, tape_file, area.path))
                copy, new = _mount_copy(session, config, media, pool, volume, copy)
                copied.new_tape = copied.new_tape or new
                copied.copy, copied.copy_barcode = copy.label, copy.barcode
                for item in staged:
                    events.note(f"{volume.label} file {item.tape_file.file_number} -> {copy.label}")
                    _write_copy_file(
                        session, config, media.drive, copy, item.tape_file, _staged_feed(item), item.digest, events
                    )
                    item.path.unlink()
                    copied.files.append(item.tape_file.file_number)
                    copied.bytes += item.tape_file.total_bytes
            finally:
                for item in staged:
                    item.path.unlink(missing_ok=True)
            remaining = remaining[len(batch) :]
    assert copy is not None
    return copy


def _batch(directory: Path, remaining: list[TapeFile]) -> list[TapeFile]:
    """The next tape files that fit into the staging directory together.

    :raises ConfigError: not even the next one fits.
    """
    free = shutil.disk_usage(directory).free - STAGING_RESERVE
    batch: list[TapeFile] = []
    used = 0
    for tape_file in remaining:
        if used + tape_file.total_bytes > free:
            break
        batch.append(tape_file)
        used += tape_file.total_bytes
    if not batch:
        first = remaining[0]
        raise ConfigError(
            f"Staging tape file {first.file_number} needs {first.total_bytes / 2**30:.2f} GiB in {directory.parent} "
            f"but only {max(free, 0) / 2**30:.2f} GiB are free; nothing was written. Free space, set another "
            "tar_dir, or copy with two drives (--drive-to)."
        )
    return batch


def _stage(drive: Drive, volume: Volume, tape_file: TapeFile, directory: Path) -> _Staged:
    path = directory / f"file-{tape_file.file_number:05d}"
    goto_file(drive, tape_file.file_number)
    with open(path, "wb") as out:
        digest, blocks = _read_tape_file(drive, volume, tape_file, out.write)
        out.flush()
        os.fsync(out.fileno())
    return _Staged(tape_file, path, digest, blocks)


def _staged_feed(item: _Staged) -> Callable[[Callable[[bytes], None]], tuple[str, int]]:
    def feed(put: Callable[[bytes], None]) -> tuple[str, int]:
        chunk = blocks_per_transfer(item.tape_file.block_size) * item.tape_file.block_size
        with open(item.path, "rb") as staged:
            while data := staged.read(chunk):
                put(data)
        return item.digest, item.blocks

    return feed


# moving the blocks ---------------------------------------------------------------


def _read_tape_file(drive: Drive, volume: Volume, tape_file: TapeFile, put: Callable[[bytes], None]) -> tuple[str, int]:
    """Read the tape file under the head to its filemark, passing every block on; its xxh3 and block count.

    :raises CopyRefused: the tape file on tape is not the size the catalog recorded.
    """
    block_size = tape_file.block_size
    size = blocks_per_transfer(block_size) * block_size
    hasher = ContentHasher()
    blocks = 0
    while True:
        try:
            data = drive.read(size)
        except BlankTape:
            data = b""
        if not data:
            break
        hasher.update(data)
        blocks += len(data) // block_size
        put(data)
    # A failed job's cut tape file is mirrored as it is: its recorded block count may be short.
    if blocks != tape_file.blocks and tape_file.status == TapeFileStatus.COMPLETE:
        raise CopyRefused(
            f"Tape {volume.label} file {tape_file.file_number} holds {blocks} blocks, the catalog recorded "
            f"{tape_file.blocks}: not copied. Verify the tape (`pytp verify --tape {volume.label}`)."
        )
    return hasher.hexdigest(), blocks


def _position_copy(session: Session, drive: Drive, copy: Volume, number: int) -> None:
    """Put the head where tape file ``number`` of the copy starts, ready to write it.

    The copy holds tape files 0..number-1 complete; a tape file ``number``
    left by an interrupted copy is written over from its start.

    :raises WrongTape: the tape holds fewer tape files, or more than one
        unfinished one: it is not what the catalog knows.
    """
    drive.eod()
    actual = drive.status().file_number
    if actual not in (number, number + 1):
        raise WrongTape(
            f"Copy tape {copy.label} holds {actual} tape files, but the catalog expects {number} "
            f"(or {number + 1} after an interrupted copy). It is not the tape the catalog knows; pytp will not "
            "write to it."
        )
    if actual == number + 1:
        goto_file(drive, number)
    # Rows of earlier attempts at this file (killed, failed) are not on the copy any more.
    for row in session.exec(
        select(TapeFile).where(
            TapeFile.volume_id == copy.id,
            col(TapeFile.file_number) >= number,
            col(TapeFile.status).in_([TapeFileStatus.WRITING, TapeFileStatus.INCOMPLETE]),
        )
    ).all():
        row.status = TapeFileStatus.ABSENT
        session.add(row)
    session.commit()


def _write_copy_file(
    session: Session,
    config: Config,
    drive: Drive,
    copy: Volume,
    source: TapeFile,
    feed: Callable[[Callable[[bytes], None]], tuple[str, int]],
    expected: str | None = None,
    events: Progress = NULL,
) -> TapeFile:
    """Write one tape file to the copy from ``feed``, read it back, and record it complete.

    The row is committed ``writing`` before the first block, so a crash leaves
    a row that no restore trusts and the next copy writes over.
    """
    number = source.file_number
    _position_copy(session, drive, copy, number)
    row = TapeFile(
        job_id=None,  # the entries and the job stay with the source's row
        volume_id=row_id(copy),
        file_number=number,
        kind=source.kind,
        source_root=source.source_root,
        block_size=source.block_size,
        copy_of_id=source.id,
    )
    copy.file_count = number + 1
    copy.last_written_at = utcnow()
    session.add_all([row, copy])
    session.commit()
    buffer = config.buffer
    try:
        writer = DriveWriter(drive.write, int(buffer.memory_gib * 2**30), buffer.start_percent, drive.name)

        def put(data: bytes) -> None:
            writer.put(data)
            events.bytes(len(data))
            events.buffer_fill(writer.stats().fill_percent / 100)

        try:
            digest, blocks = feed(put)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        drive.weof(1)
        check = _read_back(drive, number, source.block_size)
    except (EndOfMedium, BufferAborted) as err:
        # The buffer's thread hands the drive's own error on as the cause: report that one (its exit code).
        cause = err.__cause__ if isinstance(err, BufferAborted) and isinstance(err.__cause__, TapeIOError) else err
        if isinstance(cause, EndOfMedium):
            _failed(session, drive, copy, row, full=True)
            raise TapeFull(
                f"Copy tape {copy.label} is full at tape file {number}: copies do not span tapes, so a copy tape "
                f"must hold its source up to the last tape file copied. {copy.label} is marked full (its tape "
                f"files before {number} stay usable); run the copy again with a tape at least as large as the "
                "source to start a new copy."
            ) from err
        _failed(session, drive, copy, row)
        raise cause from None
    except BaseException:
        _failed(session, drive, copy, row)
        raise
    wanted = expected or digest
    if check != (wanted, blocks):
        row.status = TapeFileStatus.INCOMPLETE
        session.add(row)
        session.commit()
        copy.last_verify_result = "failed"
        copy.last_verified_at = utcnow()
        copy.last_verify_message = f"pytp copy: tape file {number} read back differs from the source"
        mark_error(session, copy, f"tape file {number} read back after the copy differs from its source")
        raise VerifyFailed(
            f"Copy tape {copy.label}: tape file {number} read back after writing differs from the source "
            f"({check[1]} blocks read, {blocks} written). The copy tape is marked error; run the copy again "
            "to start a new one."
        )
    row.status = TapeFileStatus.COMPLETE
    row.blocks = blocks
    row.total_bytes = blocks * source.block_size
    copy.bytes_written += row.total_bytes
    session.add_all([row, copy])
    session.commit()
    events.file("", 0)  # the bytes were counted as they went through
    return row


def _read_back(drive: Drive, number: int, block_size: int) -> tuple[str, int]:
    goto_file(drive, number)
    hasher = ContentHasher()
    blocks = 0
    size = blocks_per_transfer(block_size) * block_size
    while True:
        try:
            data = drive.read(size)
        except BlankTape:
            break
        if not data:
            break
        hasher.update(data)
        blocks += len(data) // block_size
    return hasher.hexdigest(), blocks


def _failed(session: Session, drive: Drive, copy: Volume, row: TapeFile, full: bool = False) -> None:
    """The tape file did not make it: its row is incomplete; a full copy tape is not continued."""
    try:
        session.rollback()
        row.status = TapeFileStatus.INCOMPLETE
        if full:
            copy.status = VolumeStatus.FULL
            copy.status_reason = f"full at tape file {row.file_number} during pytp copy"
            try:
                drive.weof(1)  # close the cut file so the tape stays well formed
            except TapeIOError:
                pass
        session.add_all([row, copy])
        session.commit()
    except Exception:  # noqa: BLE001 - the original error matters more; the row stays 'writing'
        pass


def summary_details(result: CopyResult) -> dict[str, object]:
    """The copy-only fields of a job summary (``--format json|csv``, the job log, the notify hook)."""
    return {
        "mode": result.mode,
        "drives": list(result.drives),
        "loads": result.loads,
        "copies": [
            {
                "source": t.source,
                "copy": t.copy,
                "copy_barcode": t.copy_barcode,
                "new_tape": t.new_tape,
                "held_before": t.already,
                "tape_files": ",".join(str(n) for n in t.files),
                "bytes": t.bytes,
                "jobs": ",".join(str(j) for j in t.jobs),
                "other_jobs": ",".join(str(j) for j in t.other_jobs),
            }
            for t in result.tapes
        ],
    }
