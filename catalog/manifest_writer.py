"""Writing a job's manifest to tape, its lines streamed from the catalog.

The lines come from the catalog with plain SQL, a few thousand rows at a time
(no ORM objects, nothing per file kept for the whole job), and go to a
temporary spool file: the tar header needs the manifest's size, and a
manifest that end of medium cuts short is written again on the next tape.
:func:`write_manifest` puts any iterator of lines on a drive;
:func:`place_manifest` is the job's rule for where it goes
(docs/format.md, "Spanning: where a manifest goes when the tape fills").
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from pytp.tapeio.continuation import Resume
from pytp.tapeio.drive import Drive
from pytp.tapeio.errors import EndOfMedium
from pytp.tapeio.smallarchive import write_small_archive
from pytp.tapeio.tarwriter import Problem

from .backup_job import JobRecord
from .errors import TapeFull
from .manifest import ENTRY_COLUMNS, MANIFEST_MEMBER, _bytes_fields, entry_line, header_line
from .media import Media
from .models import Entry, EntryPart, Job, TapeFile, Volume, path_text, table_of, utcnow
from .spanning import Part
from .spool_file import SpoolFile

#: rows fetched from the catalog at a time
FETCH_ROWS = 2000


class Spool:
    """Manifest lines in a temporary file: written once, read as often as a retry needs."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._file = SpoolFile("the job's manifest", prefix="pytp-manifest-")
        self._file.writelines(lines)  # the loop in C: a job's manifest has a line per file
        self.size = self._file.tell()

    def __iter__(self) -> Iterator[bytes]:
        self._file.seek(0)
        return iter(lambda: self._file.read(1 << 20), b"")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_manifest(drive: Drive, block_size: int, header: bytes, lines: Iterable[bytes]) -> int:
    """Write a manifest (``header`` then ``lines``) as a tape file at the drive's position.

    :returns: the blocks written, filemark excluded.
    :raises EndOfMedium: the tape filled before the manifest did.
    """
    if not isinstance(lines, Spool):
        with Spool(lines) as spool:
            return write_manifest(drive, block_size, header, spool)
    pieces = itertools.chain([header], lines)
    return write_small_archive(drive, block_size, MANIFEST_MEMBER, pieces, size=len(header) + lines.size)


def manifest_header(
    job: Job,
    volume: Volume,
    final: bool,
    tape_files: list[tuple[str, int, str, int]],
    problems: list[Problem],
    describes: Volume | None = None,
) -> bytes:
    """The header line: the job, the tape it is on, its data files and problems so far.

    :param describes: for a part manifest, the full tape whose part it lists.
    """
    header: dict[str, object] = {
        "id": job.id,
        "uuid": job.uuid,
        "name": job.name,
        "label": job.label,
        "level": job.level,
        "pool": job.pool,
        "host": job.host,
        "strategy": job.strategy,
        "started_at": job.started_at.isoformat(),
        "written_at": utcnow().isoformat(),
        "sources": json.loads(job.sources),
        "volume": {"label": volume.label, "uuid": volume.uuid},
        "final": final,
        "tape_files": [
            {"tape": tape, "file": number, "source": source, "blocks": blocks}
            for tape, number, source, blocks in tape_files
        ],
        "problems": [{"path": path_text(p.path), "message": p.message} for p in problems if not p.note],
        # a skipped socket, a mount point not entered: the job stays ok, and so does a rebuilt one
        "notes": [{"path": path_text(p.path), "message": p.message} for p in problems if p.note],
    }
    if describes is not None:
        # A part manifest on the tape after the full one it describes.
        header["describes"] = {"label": describes.label, "uuid": describes.uuid}
    return header_line(header)


def place_manifest(
    record: JobRecord,
    media: Media,
    lines: Spool,
    change_tape: Callable[[], Volume],
    final: bool,
    describes: Volume | None = None,
) -> None:
    """Write a manifest after the job's data, or first on the next tape when it does not fit.

    A manifest cut by end of medium is withdrawn (the tape ends after the data
    again) and written on the next tape; one that does not fit right after a
    label fails the job.

    :param change_tape: marks the tape full and loads the next one.
    :param describes: for a part manifest, the full tape whose part it lists.
    :raises TapeFull: it does not fit on a whole tape.
    """
    while True:
        assert record.volume is not None
        header = manifest_header(record.job, record.volume, final, record.tape_files, record.problems, describes)
        tape_file = record.start_tape_file(media.drive, "manifest", None)
        try:
            blocks = write_manifest(media.drive, record.block_size, header, lines)
        except EndOfMedium as err:
            if tape_file.file_number <= 1:
                # It started right after a label: it does not fit on a whole tape.
                raise TapeFull(
                    f"The manifest of job {record.job_id} ({len(header) + lines.size} bytes) does not fit on "
                    f"tape {record.volume.label} after its label; use larger tapes for this job."
                ) from err
            # The tape filled before the manifest did (the job's data ended
            # near its end, or it held other jobs): the manifest goes to
            # the next tape, never into the early-warning zone.
            record.withdraw(tape_file, media.drive)
            change_tape()
            continue
        record.complete(tape_file, blocks, None)
        return


# --------------------------------------------------------------------------
# the lines, from the catalog

_ENTRY = table_of(Entry)
_COLUMNS = [_ENTRY.c[name] for name in ("id", *ENTRY_COLUMNS)]
_TAPE_FILE = table_of(TapeFile)
_VOLUME = table_of(Volume)
_OFFSET = ENTRY_COLUMNS.index("offset")


def _stream(connection: Connection, statement: Any) -> Iterator[Any]:
    """Rows a batch at a time (a server-side cursor on PostgreSQL)."""
    yield from connection.execution_options(yield_per=FETCH_ROWS).execute(statement)


class LineMaker:
    """Member lines of one tape file, byte for byte what :func:`manifest.entry_line` makes.

    ``entry_line`` builds a dict per member and hands it to the JSON encoder;
    at tens of thousands of members a second that was most of the manifest's
    time (issue 9).  Here a line is one format of the row's values in
    ``ENTRY_COLUMNS`` order: numbers as ``int`` prints them (as JSON does),
    text through the encoder's own C escaping, and the tape's part of the
    line made once.  A value the fast form does not cover (a name that is not
    UTF-8, a NULL where a number belongs) goes through ``entry_line`` itself.
    """

    def __init__(self, tape_label: str, file_number: int) -> None:
        self.tape_label = tape_label
        self.file_number = file_number
        self._where = f',"tape":{_text(tape_label)},"tape_file":{file_number:d},"offset":'

    def line(self, values: Sequence[Any], parts: list[dict[str, Any]] | None = None) -> bytes:
        """The line of a member whose ``ENTRY_COLUMNS`` values are ``values``."""
        (path, kind, size, mode, uid, gid, uname, gname, mtime_ns, ctime_ns, inode, device, link, xxh3, offset,
         header_size, sparse_map) = values  # fmt: skip
        try:
            link_field = "" if link is None else ',"link":' + _text(link.decode())
            digest = "null" if xxh3 is None else _text(xxh3)
            tail = "}\n"
            if sparse_map is not None or parts:
                tail = (',"sparse_map":' + _text(sparse_map) if sparse_map is not None else "") + (
                    ',"parts":' + _json(parts) + tail if parts else tail
                )
            line = (
                f'{{"path":{_text(path.decode())},"type":{_text(kind)},"size":{size:d},"mode":{mode:d},'
                f'"uid":{uid:d},"gid":{gid:d},"uname":{_text(uname)},"gname":{_text(gname)},'
                f'"mtime_ns":{mtime_ns:d},"ctime_ns":{ctime_ns:d},"inode":{inode:d},"device":{device:d}'
                f'{link_field},"xxh3":{digest}{self._where}{offset:d},"header_size":{header_size:d}{tail}'
            )
        except (UnicodeDecodeError, TypeError, ValueError, AttributeError):
            # a raw name (path_b64), or a value of an unexpected type: the general form
            return entry_line(dict(zip(ENTRY_COLUMNS, values)), self.tape_label, self.file_number, parts)
        return line.encode()


#: a JSON string as ``json.dumps`` writes it (ASCII, its escapes): the encoder's own C function
_text = json.encoder.encode_basestring_ascii


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _parts(connection: Connection, job_id: int) -> dict[int, list[dict[str, Any]]]:
    """The pieces of the job's members cut across tapes (few: one per tape change)."""
    part = table_of(EntryPart)
    statement = (
        select(part, _VOLUME.c.label, _TAPE_FILE.c.file_number)
        .join(_TAPE_FILE, _TAPE_FILE.c.id == part.c.tape_file_id)
        .join(_VOLUME, _VOLUME.c.id == _TAPE_FILE.c.volume_id)
        .join(_ENTRY, _ENTRY.c.id == part.c.entry_id)
        .where(_ENTRY.c.job_id == job_id)
        .order_by(part.c.entry_id, part.c.part)
    )
    parts: dict[int, list[dict[str, Any]]] = {}
    for row in connection.execute(statement):
        parts.setdefault(row.entry_id, []).append(
            {
                "part": row.part,
                "tape": row.label,
                "tape_file": row.file_number,
                "offset": row.offset,
                "header_size": row.header_size,
                "data_start": row.data_start,
                "data_size": row.data_size,
            }
        )
    return parts


def manifest_lines(
    engine: Engine, job_id: int, volume_id: int | None = None, exclude_tape_file: int | None = None
) -> Iterator[bytes]:
    """Manifest lines for the job's entries from the catalog, parts included.

    :param volume_id: only entries in tape files of this tape.
    :param exclude_tape_file: leave out this tape file's entries (a source
        still being written, whose rows are not in place yet).
    """
    statement = (
        select(*_COLUMNS, _VOLUME.c.label, _TAPE_FILE.c.file_number)
        .join(_TAPE_FILE, _TAPE_FILE.c.id == _ENTRY.c.tape_file_id)
        .join(_VOLUME, _VOLUME.c.id == _TAPE_FILE.c.volume_id)
        .where(_ENTRY.c.job_id == job_id)
        .order_by(_TAPE_FILE.c.id, _ENTRY.c.offset, _ENTRY.c.id)
    )
    if volume_id is not None:
        statement = statement.where(_TAPE_FILE.c.volume_id == volume_id)
    if exclude_tape_file is not None:
        statement = statement.where(_ENTRY.c.tape_file_id != exclude_tape_file)
    with engine.connect() as connection:
        parts = _parts(connection, job_id)
        maker: LineMaker | None = None
        for row in _stream(connection, statement):
            # (id, *ENTRY_COLUMNS, label, file_number), in tape file order: a maker per tape file
            label, file_number = row[-2], row[-1]
            if maker is None or maker.file_number != file_number or maker.tape_label != label:
                maker = LineMaker(label, file_number)
            yield maker.line(row[1:-2], parts.get(row[0]) if parts else None)


def stream_part_lines(engine: Engine, job_id: int, first_tape_file: int, part: Part, cut: Resume) -> Iterator[bytes]:
    """Lines for the members of a source part that is being closed at end of medium.

    Their rows still carry stream offsets of the source's first tape file
    (``spanning.place_entries`` moves them later); here they are written as
    they are on this tape.  A member cut in its data gets a ``cut`` line.
    """
    tape_file = part.tape_file
    # A member cut in its headers starts again, whole, on the next tape: it is not on this one.
    restart = bool(cut.prefix) and cut.member is None
    end = cut.resume_at - len(cut.prefix) if restart else cut.cut
    statement = (
        select(*_COLUMNS)
        .where(
            _ENTRY.c.job_id == job_id,
            _ENTRY.c.tape_file_id == first_tape_file,
            _ENTRY.c.offset >= part.first,
            _ENTRY.c.offset < end,
        )
        .order_by(_ENTRY.c.offset, _ENTRY.c.id)
    )
    with engine.connect() as connection:
        label = connection.execute(select(_VOLUME.c.label).where(_VOLUME.c.id == tape_file.volume_id)).scalar() or ""
        maker = LineMaker(label, tape_file.file_number)
        skip = cut.member.offset if cut.member is not None else None
        for row in _stream(connection, statement):
            values = list(row[1:])
            if values[_OFFSET] == skip:
                continue  # the cut member is described by the "cut" line below
            values[_OFFSET] -= part.base
            yield maker.line(values)
    if cut.member is not None:
        cut_line = {
            "cut": {
                **_bytes_fields("path", b"/" + cut.member.header.name),
                "tape": label,
                "tape_file": tape_file.file_number,
                "offset": cut.member.offset - part.base,
                "data_on_this_tape": cut.data_done,
                "size": cut.member.data_size,
            }
        }
        yield json.dumps(cut_line, separators=(",", ":")).encode() + b"\n"
