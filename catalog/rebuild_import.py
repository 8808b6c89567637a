"""Merging what a rebuild read from one tape into the catalog.

Called inside one transaction per tape (``rebuild``): nothing here commits.
Manifest lines were checked for types and safe paths when read
(``manifest.read_manifest``); here they are checked against the tape: the tape
file they name must be a data file of their job, their offset must lie inside
it, and no two members may share an offset.  What a damaged or missing
manifest lost is recovered from the data files' own tar headers
(``tapeio.tarwalk``): such entries have no checksum, and their job says so.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from pytp.tapeio.blockio import TapeFileReader
from pytp.tapeio.drive import Drive
from pytp.tapeio.errors import TapeIOError, TarFormatError
from pytp.tapeio.tarformat import padded
from pytp.tapeio.tarwalk import Damage, walk_headers
from pytp.tapeio.tarwriter import catalog_ns, member_data_size

from .backup_job import ENTRY_BATCH, entry_totals
from .entry_insert import insert_rows, member_values, stored_row
from .key_set import KeySet
from .manifest import ReadManifest, entry_fields, path_text_of, safe_path
from .models import (
    Entry,
    EntryPart,
    Job,
    JobProblem,
    JobStatus,
    TapeFile,
    TapeFileStatus,
    Volume,
    row_id,
    utcnow,
)
from .rebuild_scan import DATA, MAX_LINES_REPORTED, goto_file
from .record_spool import RecordSpool, SegmentWriter

#: Recovered jobs get a uuid derived from the tape and their first tape file,
#: so rebuilding the same tape again merges instead of adding them twice.
_RECOVERED_NAMESPACE = uuidlib.UUID("6c1f4f38-5d0e-4c58-9d43-0b7c39b5a7e1")
#: Continuations of members cut across tapes are parts, not members.
_CONTINUATION = "pytp continuation"
#: every column of an entry row but ``id``
#: rows fetched at a time from the catalog into a key set
_FETCH = 10_000


@dataclass
class ImportCounts:
    """What the import of tapes added; the report keeps one for the whole rebuild."""

    jobs_added: list[int] = field(default_factory=list)
    jobs_known: int = 0
    jobs_seen: set[int] = field(default_factory=set)
    entries: int = 0
    recovered_entries: int = 0
    recovered_jobs: list[int] = field(default_factory=list)
    pending_parts: int = 0
    notes: list[str] = field(default_factory=list)


#: ``problem(file, message, line)``: report a problem on the tape being imported.
Problem = Callable[[int | None, str, int | None], None]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def job_for(session: Session, info: dict[str, Any], counts: ImportCounts) -> tuple[Job, bool]:
    """The job of a manifest, created on first sight (then True): ``running`` until :func:`settle_job`.

    A job is offered to search once good (``search_index``): created running,
    its entries are indexed in one statement when it settles, not one by one.
    """
    job = session.exec(select(Job).where(Job.uuid == info["uuid"])).first()
    created = job is None
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
            started_at=_when(info.get("started_at")) or utcnow(),
            status=JobStatus.RUNNING,
            message=FROM_TAPE,
        )
        session.add(job)
        session.flush()
        counts.jobs_added.append(row_id(job))
        problems = info.get("problems", [])
        if problems:
            session.execute(
                insert(JobProblem),
                [
                    dict(job_id=job.id, path=p["path"].encode(), path_text=p["path"], message=p["message"])
                    for p in problems
                ],
            )
    elif job.id not in counts.jobs_added and job.id not in counts.jobs_seen:
        counts.jobs_known += 1
    counts.jobs_seen.add(row_id(job))
    return job, created


#: the message of every job a rebuild made from tape (``job_for``)
FROM_TAPE = "rebuilt from tape"
#: the notes ``rebuild`` adds to a job whose tapes were not all read
UNREAD_FINAL = "final manifest not read"
UNREAD_MEMBERS = "members on tapes not read: "
_UNREAD_NOTES = re.compile(f"; (?:{UNREAD_FINAL}|{UNREAD_MEMBERS}[^;]*)")


def settle_job(job: Job, info: dict[str, Any], final: bool, created: bool) -> str | None:
    """A final manifest settles its job's status; until it is read, only parts of the job are known.

    A job the catalog had from its backup keeps the status the backup gave it:
    a backup killed after its manifest reached tape stays ``failed`` (the
    rows of its last tape file say so too).

    :returns: a note when the tape disagrees with such a job's status.
    """
    problems = info.get("problems", [])
    if not (created or (job.message or "").startswith(FROM_TAPE)):
        said = JobStatus.PARTIAL if problems else JobStatus.OK
        if final and job.status not in (said, JobStatus.RUNNING):
            return (
                f"job {job.id} is {job.status} in the catalog, though its manifest on tape is complete "
                f"and says {said}: left {job.status} (`pytp verify --job {job.id}` reads it)"
            )
        return None
    if final:
        job.status = JobStatus.PARTIAL if problems else JobStatus.OK
        job.ended_at = _when(info.get("written_at")) or job.started_at or utcnow()
        job.problems = len(problems)
        # What an earlier rebuild could not read is decided again at this one's end.
        job.message = _UNREAD_NOTES.sub("", job.message or FROM_TAPE)
    elif created:
        job.status = JobStatus.PARTIAL


def mark_partial(job: Job, note: str) -> None:
    """The job lost something on tape or in its manifest: ``partial``, and its message says what."""
    if job.status != JobStatus.FAILED:
        job.status = JobStatus.PARTIAL
    if note not in (job.message or ""):
        job.message = f"{job.message or FROM_TAPE}; {note}"


def _known_tape_files(session: Session, job: Job) -> dict[tuple[str, int], TapeFile]:
    rows = session.exec(
        select(TapeFile, Volume.label)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(TapeFile.job_id == job.id)
    ).all()
    return {(label, tape_file.file_number): tape_file for tape_file, label in rows}


#: Tape file rows that no longer describe what is on tape at their number.
GONE = (TapeFileStatus.OVERWRITTEN, TapeFileStatus.ABSENT)


def _tape_file_owner(session: Session, volume: Volume, number: int) -> TapeFile | None:
    """The row of what is on ``volume`` at tape file ``number`` (rows of recycled data aside)."""
    return session.exec(
        select(TapeFile).where(
            TapeFile.volume_id == volume.id, TapeFile.file_number == number, col(TapeFile.status).not_in(GONE)
        )
    ).first()


@dataclass
class ManifestOutcome:
    """What importing one manifest found out.

    :param data_files: data tape files of this tape that the manifest claims for its job.
    :param damaged: some of its member lines were unusable, so members of its
        data files on this tape may be missing (recover them from headers).
    :param pending: lines or parts name tape files of tapes not read yet.
    """

    job: Job
    data_files: list[int] = field(default_factory=list)
    damaged: bool = False
    pending: bool = False


def import_manifest(
    session: Session,
    volume: Volume,
    number: int,
    blocks: int,
    manifest: ReadManifest,
    kinds: dict[str, list[str]],
    counts: ImportCounts,
    problem: Problem,
) -> ManifestOutcome:
    """Merge one manifest: its job's tape files on known tapes, then every member whose tape file is known.

    A manifest may describe data files of other tapes (a job that spanned
    tapes writes the part manifest of a full tape on the next one), so tape
    files are created on every tape the catalog knows.  Idempotent: tape
    files and members already in the catalog are left as they are, so tapes
    can be read in any order and a manifest read again once the tapes it
    points to are known (``rebuild`` does that, with problems already reported).

    :param kinds: for each tape read in this rebuild, the kind of each of its
        tape files (``rebuild_scan``), to refuse data files that are not there.
    """
    assert manifest.job is not None
    info = manifest.job
    job, created = job_for(session, info, counts)
    outcome = ManifestOutcome(job, damaged=manifest.damaged)
    known = _known_tape_files(session, job)
    if not created and (clash := _clash_with_known_members(session, job, known, manifest)):
        # A forged tape (or another tape's manifest copied onto it) must not
        # slip its members into a job the catalog knows; its data files are
        # claimed by this refusal, so they are not recovered from headers either.
        problem(number, f"{clash}: a forged or mixed-up manifest, nothing of it imported", None)
        mine = [piece["file"] for piece in info["tape_files"] if piece["tape"] == volume.label]
        return ManifestOutcome(job, data_files=mine)
    volumes: dict[str, Volume | None] = {volume.label: volume}
    header_lies = 0
    for piece in info["tape_files"]:
        label, file_number = piece["tape"], piece["file"]
        if (label, file_number) in known:
            if label == volume.label:
                outcome.data_files.append(file_number)
            continue
        if label not in volumes:
            volumes[label] = session.exec(select(Volume).where(Volume.label == label)).first()
        owner_volume = volumes[label]
        if owner_volume is None:
            outcome.pending = True  # a tape not read (yet)
            continue
        kind = kinds[label][file_number - 1] if label in kinds and file_number <= len(kinds[label]) else None
        if label in kinds and kind != DATA:
            found = "not on the tape" if kind is None else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} tape file"
            message = f"the job's data file {file_number} of tape {label} is {found}; its members are left out"
            problem(number, message, 1)
            header_lies += 1
            continue
        tape_file = _tape_file_owner(session, owner_volume, file_number)
        if tape_file is None:
            tape_file = _new_data_file(session, job, owner_volume, piece)
        elif tape_file.job_id != job.id and _recovered_owner(session, owner_volume, tape_file) is not None:
            # An earlier rebuild recovered this file from its headers, not
            # having read this manifest (a spanned job's manifest is on the
            # next tape): the manifest knows better, checksums included.
            _take_over(session, tape_file, job, piece)
        else:
            if tape_file.job_id != job.id:
                problem(number, f"the job's data file {file_number} of tape {label} belongs to another job", 1)
                header_lies += 1
            continue
        known[(label, file_number)] = tape_file
        if label == volume.label:
            outcome.data_files.append(file_number)
    if (volume.label, number) not in known and _tape_file_owner(session, volume, number) is None:
        session.add(
            TapeFile(
                job_id=job.id,
                volume_id=row_id(volume),
                file_number=number,
                kind="manifest",
                status=TapeFileStatus.COMPLETE,
                block_size=volume.block_size,
                blocks=blocks,
                total_bytes=blocks * volume.block_size,
            )
        )
    session.flush()
    with RecordSpool() as parts_spool:
        with_parts = SegmentWriter(parts_spool)
        members = _add_members(session, volume, job, created, known, manifest, outcome, problem, number, with_parts)
        counts.entries += members.added
        if manifest.final:
            job.files = members.files
            job.total_bytes = members.bytes
        _import_parts(session, job, known, with_parts.finish(), counts, outcome)
    disagreement = settle_job(job, info, manifest.final, created)
    if disagreement and disagreement not in counts.notes:
        counts.notes.append(disagreement)
    if outcome.damaged or manifest.header_problems or header_lies:
        mark_partial(job, f"manifest on tape {volume.label} file {number} is damaged")
    session.add(job)
    session.flush()
    return outcome


def _clash_with_known_members(
    session: Session, job: Job, known: dict[tuple[str, int], TapeFile], manifest: ReadManifest
) -> str | None:
    """Why the manifest of a known job describes that job's members somewhere else; None when it does not.

    A job stores each path once, so a line that puts a path of the job in a
    tape file the job did not have is a lie (lines in its known tape files are
    checked offset by offset by ``_add_members``).  Only such lines are
    looked at: reading a manifest again, or the next tape of a spanned job,
    costs nothing here.
    """
    paths: KeySet | None = None
    labels = {row_id(t): label for (label, _), t in known.items()}
    try:
        for _, line in manifest.lines:
            if line["type"] == "deleted" or (line["tape"], line["tape_file"]) in known:
                continue
            if paths is None:
                paths = KeySet(by_name=True)
                query = select(Entry.tape_file_id, Entry.offset, Entry.path).where(
                    Entry.job_id == job.id, Entry.kind != "deleted"
                )
                for chunk in session.execute(query.execution_options(yield_per=_FETCH)).partitions():
                    paths.update((t, o, bytes(p)) for t, o, p in chunk)
            path = entry_fields(line)["path"]
            place = paths.place_of(path)
            if place is not None:
                tape_file = next((t for t in known.values() if row_id(t) == place[0]), None)
                where = f"tape {labels.get(place[0], '?')} file {tape_file.file_number if tape_file else '?'}"
                return (
                    f"it puts {path_text_of(path)!r} of job {job.id} on tape {line['tape']} file "
                    f"{line['tape_file']}, where the catalog has it on {where}"
                )
    finally:
        if paths is not None:
            paths.close()
    return None


def _new_data_file(session: Session, job: Job, volume: Volume, piece: dict[str, Any]) -> TapeFile:
    tape_file = TapeFile(
        job_id=job.id,
        volume_id=row_id(volume),
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
    return tape_file


def _recovered_owner(session: Session, volume: Volume, tape_file: TapeFile) -> Job | None:
    """The job of ``tape_file`` if a rebuild made it up from tar headers (``recovered_job``).

    Its uuid was made from its first data file on ``volume`` when it was
    recovered; a manifest read since may have taken that file over, so every
    file up to this one is a candidate.
    """
    if tape_file.job_id is None:
        return None
    job = session.get(Job, tape_file.job_id)
    if job is None:
        return None
    if any(job.uuid == _recovered_uuid(volume, first) for first in range(1, tape_file.file_number + 1)):
        return job
    return None


def _take_over(session: Session, tape_file: TapeFile, job: Job, piece: dict[str, Any]) -> None:
    """Give a recovered job's data file to the job whose manifest describes it.

    The recovered entries go (the manifest's lines bring the members back,
    with checksums); a recovered job left without data files goes too.
    """
    recovered = session.get(Job, tape_file.job_id)
    session.execute(delete(Entry).where(col(Entry.tape_file_id) == tape_file.id))
    tape_file.job_id = job.id
    tape_file.source_root = piece["source"].encode("utf-8", "surrogateescape")
    tape_file.blocks = piece["blocks"]
    tape_file.total_bytes = piece["blocks"] * tape_file.block_size
    session.add(tape_file)
    session.flush()
    if recovered is None:
        return
    left = session.exec(select(TapeFile).where(TapeFile.job_id == recovered.id)).all()
    if any(t.kind == "data" for t in left):
        settle_totals(session, recovered)
        return
    for other in left:
        session.execute(delete(Entry).where(col(Entry.tape_file_id) == other.id))
        session.delete(other)
    session.flush()
    session.delete(recovered)
    session.flush()


class EntryRows:
    """Entry rows inserted a batch at a time, in the caller's transaction (one per tape).

    The backup's ``EntrySink`` commits each batch on a thread and connection
    of its own; a rebuild must not: a tape is imported whole or not at all.
    Rows are plain tuples sent with one executemany a batch (``entry_insert``).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.rows: list[tuple[object, ...]] = []
        self.added = 0

    def __enter__(self) -> EntryRows:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.flush()

    def add(self, job_id: int, tape_file_id: int, fields: dict[str, Any]) -> None:
        """One entry: its columns as ``manifest.entry_fields`` gives them."""
        self.rows.append(stored_row(job_id, tape_file_id, member_values(fields)))
        if len(self.rows) >= ENTRY_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            insert_rows(self.session.connection(), self.rows)
            self.added += len(self.rows)
            self.rows = []


@dataclass
class _Members:
    """What the member lines of a manifest add up to."""

    added: int = 0
    files: int = 0
    bytes: int = 0


def _add_members(
    session: Session,
    volume: Volume,
    job: Job,
    created: bool,
    known: dict[tuple[str, int], TapeFile],
    manifest: ReadManifest,
    outcome: ManifestOutcome,
    problem: Problem,
    number: int,
    with_parts: SegmentWriter,
) -> _Members:
    """Insert entries for the member lines whose tape file is known and who fit in it.

    Every member line is counted (the job's totals, from its final manifest);
    members already in the catalog are not added again, and no two may share
    an offset: both are checked in a :class:`KeySet` on disk, filled from the
    catalog.  A new job's lines need none while each lies past every offset
    of its tape file accepted so far (pytp writes them in offset order), so
    the key set is made only when a line does: from the rows inserted until
    then.  Members cut across tapes go to ``with_parts``.
    """
    totals = _Members()
    job_id = row_id(job)
    # Read once: an ORM attribute per line costs as much as the line's own checks.
    places = {key: _Place(row_id(t), t.file_number, t.blocks * t.block_size) for key, t in known.items()}
    present = None if created else _present_keys(session, job_id)
    #: a new job's highest offset accepted so far, by tape file
    last: dict[int, int] = {}
    with EntryRows(session) as rows:
        try:
            for line_number, line in manifest.lines:
                if line["type"] != "deleted":
                    totals.files += 1
                    totals.bytes += line["size"]
                place = places.get((line["tape"], line["tape_file"]))
                if place is None:
                    if line["tape"] == volume.label:
                        problem(
                            number,
                            f"names tape file {line['tape_file']}, which is not a data file of this job",
                            line_number,
                        )
                        outcome.damaged = True
                    else:
                        outcome.pending = True  # on a tape not read (yet)
                    continue
                fields = entry_fields(line)
                offset = line["offset"]
                tape_file_id = place.id
                deleted = line["type"] == "deleted"
                if created and not deleted and offset > last.get(tape_file_id, -1):
                    found = KeySet.ABSENT  # past every member of this job's tape file
                else:
                    if present is None:
                        rows.flush()
                        present = _present_keys(session, job_id)
                    if deleted:
                        # Deleted-path markers all sit at offset -1: only the whole key tells them apart.
                        found = KeySet.PRESENT if (tape_file_id, offset, fields["path"]) in present else KeySet.ABSENT
                    else:
                        found = present.find(tape_file_id, offset, fields["path"])
                if found == KeySet.PRESENT:
                    continue
                if not deleted:
                    why = _misplaced(line, place)
                    if why is None and found == KeySet.OTHER_NAME:
                        why = f"offset {offset} is already another member's"
                    if why:
                        problem(number, f"{path_text_of(fields['path'])!r}: {why}", line_number)
                        outcome.damaged = True
                        continue
                    last[tape_file_id] = max(last.get(tape_file_id, -1), offset)
                rows.add(job_id, tape_file_id, fields)
                if present is not None:
                    present.add(tape_file_id, offset, fields["path"])
                if line.get("parts"):
                    with_parts.append((tape_file_id, offset, line["parts"]))
        finally:
            if present is not None:
                present.close()
    totals.added = rows.added
    return totals


def _present_keys(session: Session, job_id: int) -> KeySet:
    """The ``(tape file, offset, path)`` of every entry of the job in the catalog, in a key set."""
    keys = KeySet()
    query = select(Entry.tape_file_id, Entry.offset, Entry.path).where(Entry.job_id == job_id)
    for chunk in session.execute(query.execution_options(yield_per=_FETCH)).partitions():
        keys.update((t, o, bytes(p)) for t, o, p in chunk)
    return keys


@dataclass(frozen=True)
class _Place:
    """A tape file as the member lines need it: its row, number and size in bytes (0: not known)."""

    id: int
    number: int
    size: int


def _misplaced(line: dict[str, Any], place: _Place) -> str | None:
    """Why a member line cannot be where it says in tape file ``place`` (None: it can)."""
    size = place.size
    if not size:
        return None  # its length is not known (a tape file recovered, or never completed)
    end = line["offset"] + line["header_size"]
    if not line.get("parts") and line["type"] == "file":
        # A member cut across tapes goes on elsewhere; a sparse one holds its map and data regions.
        end += padded(member_data_size("file", line["size"], line.get("sparse_map")))
    if end > size:
        return (
            f"offset {line['offset']} and size {line['size']} reach past the end of "
            f"tape file {place.number} ({size} bytes)"
        )
    return None


def _import_parts(
    session: Session,
    job: Job,
    known: dict[tuple[str, int], TapeFile],
    with_parts: Iterable[tuple[int, int, list[dict[str, Any]]]],
    counts: ImportCounts,
    outcome: ManifestOutcome,
) -> None:
    """The parts of members cut across tapes, once every part's tape file is known."""
    for tape_file_id, offset, parts in with_parts:
        files = [known.get((p["tape"], p["tape_file"])) for p in parts]
        if None in files:
            counts.pending_parts += 1
            outcome.pending = True
            continue
        entry = session.exec(
            select(Entry).where(Entry.job_id == job.id, Entry.tape_file_id == tape_file_id, Entry.offset == offset)
        ).first()
        if entry is None or session.exec(select(EntryPart.id).where(EntryPart.entry_id == entry.id)).first():
            continue  # parts already known
        for p, part_file in zip(parts, files):
            session.add(
                EntryPart(
                    entry_id=row_id(entry),
                    part=p["part"],
                    tape_file_id=part_file.id,  # type: ignore[union-attr]
                    offset=p["offset"],
                    header_size=p["header_size"],
                    data_start=p["data_start"],
                    data_size=p["data_size"],
                )
            )


def record_snapshot(session: Session, volume: Volume, number: int, blocks: int, whole: bool) -> None:
    """A catalog snapshot's tape file; one cut short (its `catalog backup` was killed) is ``incomplete``."""
    if _tape_file_owner(session, volume, number) is None:
        session.add(
            TapeFile(
                volume_id=row_id(volume),
                file_number=number,
                kind="catalog",
                status=TapeFileStatus.COMPLETE if whole else TapeFileStatus.INCOMPLETE,
                block_size=volume.block_size,
                blocks=blocks if whole else 0,
                total_bytes=blocks * volume.block_size if whole else 0,
            )
        )


# --------------------------------------------------------------------------
# recovery from the data files' own tar headers


def _recovered_uuid(volume: Volume, first_file: int) -> str:
    return str(uuidlib.uuid5(_RECOVERED_NAMESPACE, f"{volume.uuid}:{first_file}"))


def recovered_job(session: Session, volume: Volume, files: list[int], why: str, counts: ImportCounts) -> Job:
    """The job standing for data files no readable manifest describes, with their tape files."""
    uuid = _recovered_uuid(volume, files[0])
    job = session.exec(select(Job).where(Job.uuid == uuid)).first()
    span = f"{files[0]}" if len(files) == 1 else f"{files[0]}-{files[-1]}"
    if job is None:
        job = Job(
            uuid=uuid,
            name=f"recovered-{volume.label}-{span}",
            pool=volume.pool,
            # partial once its entries are in (``settle_totals``): indexed for search in one statement
            status=JobStatus.RUNNING,
            message=(
                f"recovered from the tar headers of tape {volume.label} file(s) {span} ({why}): "
                "no checksums, nothing verified"
            ),
        )
        session.add(job)
        session.flush()
        counts.jobs_added.append(row_id(job))
        counts.recovered_jobs.append(row_id(job))
    elif job.id not in counts.jobs_added and job.id not in counts.jobs_seen:
        counts.jobs_known += 1
    counts.jobs_seen.add(row_id(job))
    for number in files:
        if _tape_file_owner(session, volume, number) is None:
            session.add(
                TapeFile(
                    job_id=job.id,
                    volume_id=row_id(volume),
                    file_number=number,
                    kind="data",
                    status=TapeFileStatus.COMPLETE,
                    block_size=volume.block_size,
                )
            )
    session.flush()
    return job


def recover_from_headers(
    session: Session,
    drive: Drive,
    volume: Volume,
    job: Job,
    number: int,
    counts: ImportCounts,
    problem: Problem,
) -> None:
    """Add the members of tape file ``number`` that the catalog lacks, from their tar headers.

    Members already known (by offset) are left alone; recovered ones have no
    checksum.  Unsafe names (absolute, with ``..``) are reported, not added.
    """
    tape_file = _tape_file_owner(session, volume, number)
    if tape_file is None or tape_file.job_id != job.id:
        return
    end = 0
    listed = unlisted = 0

    def lost(message: str) -> None:
        # A hostile archive of a million unsafe members must not make a report
        # of a million lines: list the first ones, as for bad manifest lines.
        nonlocal listed, unlisted
        if listed >= MAX_LINES_REPORTED:
            unlisted += 1
            return
        listed += 1
        problem(number, message, None)

    with KeySet() as present, EntryRows(session) as rows:
        # Members a manifest's good lines brought: by offset (a damaged manifest's tape file).
        query = select(Entry.offset).where(Entry.tape_file_id == tape_file.id)
        for chunk in session.execute(query.execution_options(yield_per=_FETCH)).partitions():
            present.update((0, offset, b"") for (offset,) in chunk)
        try:
            goto_file(drive, number)
            reader = TapeFileReader(drive, volume.block_size)
            for member in walk_headers(reader, resync=True):
                if isinstance(member, Damage):
                    # As GNU tar does: skip to the next valid header, name what was lost.
                    to = f"byte {member.resumed}" if member.resumed is not None else "the end of the tape file"
                    lost(f"{member.reason}; skipped to {to}: members in between are not recovered")
                    continue
                h = member.header
                end = max(end, member.offset + member.header_size + (padded(h.size) if member.complete else 0))
                shown = path_text_of(h.name)
                if not member.complete:
                    lost(f"member {shown!r} at byte {member.offset} is cut short: not recovered")
                    continue
                if (h.comment or "").startswith(_CONTINUATION) or (0, member.offset, b"") in present:
                    continue
                row = _recovered_row(h, member.offset, member.header_size)
                if isinstance(row, dict) and h.realsize is not None:
                    # A sparse file: its map says how many bytes it has on tape.
                    row["sparse_map"] = member.sparse_map
                    if member.sparse_map is None:
                        row = "is a sparse file whose map cannot be read"
                why = row if isinstance(row, str) else None
                if why:
                    lost(f"member {shown!r} at byte {member.offset} {why}: not recovered")
                    continue
                rows.add(row_id(job), row_id(tape_file), row)  # type: ignore[arg-type]
        except TarFormatError as err:
            problem(number, f"{err}: the members after it are not recovered", None)
        except TapeIOError as err:
            problem(number, f"reading the tar headers failed ({err}): the members after it are not recovered", None)
    if unlisted:
        problem(number, f"and {unlisted} more member(s) not recovered, not listed", None)
    counts.recovered_entries += rows.added
    counts.entries += rows.added
    if not tape_file.blocks and end:
        tape_file.blocks = -(-end // volume.block_size)
        tape_file.total_bytes = tape_file.blocks * volume.block_size
        session.add(tape_file)
    session.flush()


def settle_totals(session: Session, job: Job) -> None:
    """A recovered or damaged job's file count and bytes: what its entries now hold.

    A recovered job, ``running`` while its entries went in, is ``partial`` from now on.
    """
    job.files, job.total_bytes = entry_totals(session, row_id(job))
    if job.status == JobStatus.RUNNING:
        job.status = JobStatus.PARTIAL
    session.add(job)


def _recovered_row(h: Any, offset: int, header_size: int) -> dict[str, Any] | str:
    """The entry columns of a member from its header, or why it may not become a row."""
    name = h.name
    if name.startswith(b"/"):
        return "has an absolute name"
    if h.kind == "other":
        return "is of a kind pytp does not restore"
    path = b"/" + name.rstrip(b"/") if name.rstrip(b"/") else b"/"
    why = safe_path(path)
    if why:
        return f"name {why}"
    link: bytes | None = h.linkname or None
    if h.kind == "hardlink":
        if link is None or link.startswith(b"/") or safe_path(b"/" + link):
            return "is a hard link pointing outside the archive"
        link = b"/" + link.rstrip(b"/")
    size = h.size if h.kind == "file" else 0
    realsize = getattr(h, "realsize", None)
    return dict(
        path=path,
        path_text=path.decode("utf-8", "backslashreplace"),
        kind=h.kind,
        size=realsize if realsize is not None else size,
        mode=h.mode,
        uid=h.uid,
        gid=h.gid,
        uname=h.uname,
        gname=h.gname,
        mtime_ns=catalog_ns(h.mtime_ns),
        ctime_ns=catalog_ns(h.mtime_ns),
        inode=0,
        device=0,
        link_target=link,
        xxh3=None,  # nothing was read to check: a recovered entry has no checksum
        offset=offset,
        header_size=header_size,
        sparse_map=None,
    )
