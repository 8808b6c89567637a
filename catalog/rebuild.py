"""Rebuilding the catalog from tapes: labels and manifests only.

For each tape the label gives the volume; then every tape file is looked at
by its first block alone.  A manifest is read whole and brings its job, tape
files and entries; a data file is skipped by filemark (``fsf``), so a rebuild
costs one block per data file, not the data.  Jobs are merged by their uuid:
rebuilding into a catalog that already has them adds nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.changer import StorageElement
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import BlankTape, ForeignTape
from pytp.tapeio.smallarchive import peek_member_name, read_small_archive
from pytp.tapeio.tarformat import END_OF_ARCHIVE, padded
from pytp.tapeio.volume_label import VolumeLabel

from .config import Config
from .devices import Selection, drive_lock
from .errors import NotFound
from .manifest import MANIFEST_MEMBER, SNAPSHOT_MEMBER, entry_fields, parse_manifest
from .media import Media
from .models import Entry, EntryPart, Job, JobProblem, JobStatus, TapeFile, TapeFileStatus, Volume


@dataclass
class RebuildReport:
    tapes: list[str] = field(default_factory=list)
    jobs_added: list[int] = field(default_factory=list)
    jobs_known: int = 0
    entries: int = 0
    data_files_skipped: int = 0
    snapshots: int = 0
    #: members cut across tapes whose other parts are on tapes not read yet
    pending_parts: int = 0
    jobs_seen: set[int] = field(default_factory=set)
    #: (volume id, file number, blocks, payload) of every manifest read
    manifests: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _volume_for(session: Session, label: VolumeLabel, barcode: str | None, library: str | None) -> Volume:
    volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first()
    if volume is None:
        volume = Volume(
            label=label.label,
            barcode=label.barcode or barcode,
            uuid=label.uuid,
            pool=label.pool,
            block_size=label.block_size,
            library=library,
            created_at=_when(label.created) or datetime.now(),
        )
        session.add(volume)
        session.commit()
    return volume


def _job_for(session: Session, info: dict[str, Any], final: bool, report: RebuildReport) -> Job:
    """The job of a manifest, created on first sight; a final manifest settles its status."""
    job = session.exec(select(Job).where(Job.uuid == info["uuid"])).first()
    problems = info.get("problems", [])
    if job is None:
        job = Job(
            uuid=info["uuid"],
            name=info.get("name"),
            label=info.get("label"),
            level=info.get("level", "full"),
            strategy=info.get("strategy", "direct"),
            pool=info.get("pool"),
            host=info.get("host"),
            sources=json.dumps(info.get("sources", [])),
            started_at=_when(info.get("started_at")),
            # Until its final manifest is read, only parts of the job are known.
            status=JobStatus.PARTIAL,
            message="rebuilt from tape",
        )
        session.add(job)
        session.flush()
        report.jobs_added.append(job.id)  # type: ignore[arg-type]
        if problems:
            session.execute(
                insert(JobProblem),
                [
                    dict(job_id=job.id, path=p["path"].encode(), path_text=p["path"], message=p["message"])
                    for p in problems
                ],
            )
    elif job.id not in report.jobs_added and job.id not in report.jobs_seen:
        report.jobs_known += 1
    report.jobs_seen.add(job.id)  # type: ignore[arg-type]
    if final:
        job.status = JobStatus.PARTIAL if problems else JobStatus.OK
        job.ended_at = _when(info.get("written_at"))
        job.problems = len(problems)
    return job


def _tape_file_ids(session: Session, job: Job) -> dict[tuple[str, int], int]:
    rows = session.exec(
        select(TapeFile.id, Volume.label, TapeFile.file_number)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(TapeFile.job_id == job.id)
    ).all()
    return {(label, number): tape_file_id for tape_file_id, label, number in rows}  # type: ignore[misc]


def _import_manifest(
    session: Session, volume: Volume, file_number: int, blocks: int, payload: bytes, report: RebuildReport
) -> None:
    """Merge one manifest: this tape's tape files, then every member whose tape file is known.

    Idempotent: tape files and members already in the catalog are left as they
    are, so tapes can be read in any order and a final manifest read again
    once the tapes it points to are known (``rebuild`` does that).
    """
    info, lines = parse_manifest(payload)
    final = bool(info.get("final", True))
    job = _job_for(session, info, final, report)
    known = _tape_file_ids(session, job)
    for piece in info.get("tape_files", []):
        if piece.get("tape") == volume.label and (volume.label, piece["file"]) not in known:
            tape_file = TapeFile(
                job_id=job.id,
                volume_id=volume.id,  # type: ignore[arg-type]
                file_number=piece["file"],
                kind="data",
                source_root=piece["source"].encode("utf-8", "surrogateescape"),
                status=TapeFileStatus.COMPLETE,
                block_size=volume.block_size,
                blocks=piece["blocks"],
                total_bytes=piece["blocks"] * volume.block_size,
            )
            session.add(tape_file)
            session.flush()
            known[(volume.label, piece["file"])] = tape_file.id  # type: ignore[assignment]
    if (volume.label, file_number) not in known:
        session.add(
            TapeFile(
                job_id=job.id,
                volume_id=volume.id,  # type: ignore[arg-type]
                file_number=file_number,
                kind="manifest",
                status=TapeFileStatus.COMPLETE,
                block_size=volume.block_size,
                blocks=blocks,
                total_bytes=blocks * volume.block_size,
            )
        )
    # Deleted-path markers all sit at offset -1: the path tells them apart.
    present = set(
        session.exec(select(Entry.tape_file_id, Entry.offset, Entry.path).where(Entry.job_id == job.id)).all()
    )
    rows, with_parts = [], []
    for line in lines:
        if "type" not in line:
            continue  # a "cut" note of a part manifest
        tape_file_id = known.get((line["tape"], line["tape_file"]))
        if tape_file_id is None:
            continue
        fields = entry_fields(line)
        if (tape_file_id, line["offset"], fields["path"]) not in present:
            rows.append({**fields, "job_id": job.id, "tape_file_id": tape_file_id})
            present.add((tape_file_id, line["offset"], fields["path"]))
        if line.get("parts"):
            with_parts.append((tape_file_id, line["offset"], line["parts"]))
    if rows:
        session.execute(insert(Entry), rows)
        report.entries += len(rows)
    if final:
        members = [line for line in lines if "type" in line and line["type"] != "deleted"]
        job.files = len(members)
        job.total_bytes = sum(m["size"] for m in members)
    _import_parts(session, job, known, with_parts, report)
    session.add(job)
    session.commit()


def _import_parts(
    session: Session,
    job: Job,
    known: dict[tuple[str, int], int],
    with_parts: list[tuple[int, int, list[dict[str, Any]]]],
    report: RebuildReport,
) -> None:
    """``EntryPart`` rows for members cut across tapes, once every part's tape file is known."""
    for tape_file_id, offset, parts in with_parts:
        ids = [known.get((p["tape"], p["tape_file"])) for p in parts]
        if None in ids:
            report.pending_parts += 1
            continue
        entry = session.exec(
            select(Entry).where(Entry.job_id == job.id, Entry.tape_file_id == tape_file_id, Entry.offset == offset)
        ).one()
        if session.exec(select(EntryPart.id).where(EntryPart.entry_id == entry.id)).first() is not None:
            continue  # parts already known
        for p, part_tape_file in zip(parts, ids):
            session.add(
                EntryPart(
                    entry_id=entry.id,  # type: ignore[arg-type]
                    part=p["part"],
                    tape_file_id=part_tape_file,  # type: ignore[arg-type]
                    offset=p["offset"],
                    header_size=p["header_size"],
                    data_start=p["data_start"],
                    data_size=p["data_size"],
                )
            )


def scan_tape(session: Session, drive: Drive, volume: Volume, report: RebuildReport) -> None:
    """Walk the tape after its label, reading one block of each file.

    The drive is inside tape file 0 (after the label was read).
    """
    block_size = volume.block_size
    number = 0
    while True:
        drive.fsf(1)
        number += 1
        try:
            first = drive.read(block_size)
        except BlankTape:
            first = b""
        if not first:
            break  # end of data: pytp writes no empty tape files
        kind = peek_member_name(first)
        if kind == MANIFEST_MEMBER:
            _, payload = read_small_archive(drive, block_size, first_block=first, expect=MANIFEST_MEMBER)
            # One ustar header, the padded content, the end-of-archive marker.
            blocks = -(-(512 + padded(len(payload)) + len(END_OF_ARCHIVE)) // block_size)
            _import_manifest(session, volume, number, blocks, payload, report)
            report.manifests.append((volume.id, number, blocks, payload))  # type: ignore[arg-type]
        elif kind == SNAPSHOT_MEMBER:
            _record_snapshot(session, volume, number)
            report.snapshots += 1
        else:
            report.data_files_skipped += 1  # the rest of it is skipped by the next fsf
    volume.file_count = number
    files = session.exec(select(TapeFile).where(TapeFile.volume_id == volume.id)).all()
    volume.bytes_written = sum(t.total_bytes for t in files if t.status != TapeFileStatus.OVERWRITTEN)
    last = max((t.file_number for t in files), default=0)
    if last + 1 < number:
        report.notes.append(
            f"{volume.label}: tape files {last + 1}..{number - 1} belong to no manifest (an unfinished job?)"
        )
    session.add(volume)
    session.commit()


def _record_snapshot(session: Session, volume: Volume, number: int) -> None:
    known = session.exec(
        select(TapeFile).where(TapeFile.volume_id == volume.id, TapeFile.file_number == number)
    ).first()
    if known is None:
        session.add(
            TapeFile(
                volume_id=volume.id,  # type: ignore[arg-type]
                file_number=number,
                kind="catalog",
                status=TapeFileStatus.COMPLETE,
                block_size=volume.block_size,
            )
        )
        session.commit()


def load_tape_for_rebuild(media: Media, tape: str | None) -> VolumeLabel:
    """Load ``tape`` (a barcode, or whatever is in the drive) and read its label.

    :raises NotFound: the tape is not there, or is blank or foreign.
    """
    for _ in _tapes(media, tape, all_tapes=False):
        try:
            found = media.read_label()
        except ForeignTape:
            found = None
        if found is None:
            raise NotFound(f"The tape in drive {media.selection.drive.name} is not a pytp tape.")
        if tape and tape not in (found.label, found.barcode, media.current_barcode()):
            raise NotFound(f"The tape in drive {media.selection.drive.name} is {found.label}, not {tape}.")
        return found
    raise NotFound(f"Tape {tape} not found.")


def rebuild(
    engine: Engine,
    config: Config,
    selection: Selection,
    *,
    tape: str | None = None,
    all_tapes: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RebuildReport:
    """Recreate volumes, jobs, tape files and entries from tapes.

    :param tape: the label or barcode of one tape (loaded through the changer,
        or already in the drive).
    :param all_tapes: every cartridge in the library, one after another.
    :raises NotFound: the tape is not in the library or drive.
    """
    report = RebuildReport()
    with drive_lock(selection.drive), Media(config, selection) as media, Session(engine) as session:
        for barcode in _tapes(media, tape, all_tapes):
            if progress:
                progress(f"reading tape {barcode or '(in drive)'}")
            try:
                found = media.read_label()
            except ForeignTape:
                report.notes.append(f"{barcode}: not a pytp tape, skipped")
                continue
            if found is None:
                report.notes.append(f"{barcode}: blank, skipped")
                continue
            if tape and not all_tapes and tape not in (found.label, barcode):
                raise NotFound(f"The tape in drive {selection.drive.name} is {found.label}, not {tape}.")
            volume = _volume_for(session, found, barcode, selection.library.name if selection.library else None)
            ensure_block_size(media.drive, volume.block_size)
            scan_tape(session, media.drive, volume, report)
            report.tapes.append(volume.label)
        # A manifest lists members on tapes read after it; read them all again
        # now that every tape file is known (merging is idempotent).
        report.pending_parts = 0
        for volume_id, number, blocks, payload in report.manifests:
            volume = session.get(Volume, volume_id)
            assert volume is not None
            _import_manifest(session, volume, number, blocks, payload, report)
    return report


def _tapes(media: Media, tape: str | None, all_tapes: bool) -> Iterator[str | None]:
    """Load each tape to rebuild in turn; yield its barcode (None when unknown)."""
    if media.changer is None:
        if not media.has_tape():
            raise NotFound(f"No tape in drive {media.selection.drive.name}.")
        yield None
        return
    status = media.changer.status()
    if all_tapes:
        if media.has_tape_in_drive():
            yield media.current_barcode()
        for slot in status.slots:
            if slot.full and not slot.import_export and not slot.is_cleaning:
                media.load(slot.number)
                yield slot.barcode
        return
    place = status.find_barcode(tape) if tape else None
    if isinstance(place, StorageElement):
        media.load(place.number)
        yield tape
        return
    # Labels default to barcodes; any other label must already be in the drive.
    if not media.has_tape_in_drive():
        raise NotFound(f"No cartridge with barcode {tape} in library {media.changer.name}, and the drive is empty.")
    yield media.current_barcode()
