"""The job manifest: the tape file after a job's data, one JSON line per member.

With volume labels and manifests alone the catalog can be rebuilt from tapes
(docs/format.md).  Raw paths that are not UTF-8 are carried in ``path_b64``
next to a readable ``path``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, col, select

MANIFEST_MEMBER = "PYTP-MANIFEST.jsonl"
#: the member of a catalog snapshot tape file (catalog/snapshot.py)
SNAPSHOT_MEMBER = "PYTP-CATALOG.jsonl.gz"
MANIFEST_VERSION = 1


def _bytes_fields(name: str, value: bytes | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        return {name: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {name: value.decode("utf-8", "backslashreplace"), f"{name}_b64": base64.b64encode(value).decode()}


def header_line(job: dict[str, Any]) -> bytes:
    """The first line: what job this manifest belongs to and where its data is."""
    return (
        json.dumps({"pytp_manifest": MANIFEST_VERSION, "job": job}, separators=(",", ":"), default=str).encode() + b"\n"
    )


def _raw(line: dict[str, Any], name: str) -> bytes | None:
    if f"{name}_b64" in line:
        return base64.b64decode(line[f"{name}_b64"])
    value = line.get(name)
    return value.encode("utf-8") if value is not None else None


def parse_manifest(payload: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job header and the member lines of a manifest.

    :raises ValueError: it is not a pytp manifest of a version this pytp reads.
    """
    lines = payload.splitlines()
    if not lines:
        raise ValueError("empty manifest")
    header = json.loads(lines[0])
    if header.get("pytp_manifest") != MANIFEST_VERSION:
        raise ValueError(f"not a version {MANIFEST_VERSION} pytp manifest")
    return header["job"], [json.loads(line) for line in lines[1:] if line.strip()]


def entry_fields(line: dict[str, Any]) -> dict[str, Any]:
    """The catalog ``Entry`` columns of one member line (job and tape file aside)."""
    path = _raw(line, "path")
    assert path is not None
    return dict(
        path=path,
        path_text=path.decode("utf-8", "backslashreplace"),
        kind=line["type"],
        size=line["size"],
        mode=line["mode"],
        uid=line["uid"],
        gid=line["gid"],
        uname=line["uname"],
        gname=line["gname"],
        mtime_ns=line["mtime_ns"],
        ctime_ns=line["ctime_ns"],
        inode=line["inode"],
        device=line["device"],
        link_target=_raw(line, "link"),
        xxh3=line["xxh3"],
        offset=line["offset"],
        header_size=line["header_size"],
    )


def entry_line(
    fields: dict[str, Any], tape_label: str, file_number: int, parts: list[dict[str, Any]] | None = None
) -> bytes:
    """One manifest line for a catalog entry (``fields``: its columns)."""
    line: dict[str, Any] = {
        **_bytes_fields("path", fields["path"]),
        "type": fields["kind"],
        **{key: fields[key] for key in ("size", "mode", "uid", "gid", "uname", "gname", "mtime_ns", "ctime_ns")},
        "inode": fields["inode"],
        "device": fields["device"],
        **_bytes_fields("link", fields["link_target"]),
        "xxh3": fields["xxh3"],
        "tape": tape_label,
        "tape_file": file_number,
        "offset": fields["offset"],
        "header_size": fields["header_size"],
    }
    if parts:
        line["parts"] = parts
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


_ENTRY_COLUMNS = (
    "path",
    "kind",
    "size",
    "mode",
    "uid",
    "gid",
    "uname",
    "gname",
    "mtime_ns",
    "ctime_ns",
    "inode",
    "device",
    "link_target",
    "xxh3",
    "offset",
    "header_size",
)


def _fields(entry: Any) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _ENTRY_COLUMNS}


def manifest_lines(
    session: Session, job_id: int, volume_id: int | None = None, exclude_tape_file: int | None = None
) -> Iterator[bytes]:
    """Manifest lines for the job's entries from the catalog, parts included.

    :param volume_id: only entries in tape files of this tape.
    :param exclude_tape_file: leave out this tape file's entries (a source
        still being written, whose rows are not in place yet).
    """
    from .models import Entry, EntryPart, TapeFile, Volume

    parts: dict[int, list[dict[str, Any]]] = {}
    for part, tape_file, volume in session.exec(
        select(EntryPart, TapeFile, Volume)
        .join(TapeFile, col(TapeFile.id) == EntryPart.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .join(Entry, col(Entry.id) == EntryPart.entry_id)
        .where(Entry.job_id == job_id)
        .order_by(col(EntryPart.entry_id), col(EntryPart.part))
    ).all():
        parts.setdefault(part.entry_id, []).append(
            {
                "part": part.part,
                "tape": volume.label,
                "tape_file": tape_file.file_number,
                "offset": part.offset,
                "header_size": part.header_size,
                "data_start": part.data_start,
                "data_size": part.data_size,
            }
        )
    query = (
        select(Entry, TapeFile, Volume)
        .join(TapeFile, col(TapeFile.id) == Entry.tape_file_id)
        .join(Volume, col(Volume.id) == TapeFile.volume_id)
        .where(Entry.job_id == job_id)
        .order_by(col(TapeFile.id), col(Entry.offset))
    )
    if volume_id is not None:
        query = query.where(TapeFile.volume_id == volume_id)
    if exclude_tape_file is not None:
        query = query.where(Entry.tape_file_id != exclude_tape_file)
    for entry, tape_file, volume in session.exec(query):
        yield entry_line(_fields(entry), volume.label, tape_file.file_number, parts.get(entry.id))  # type: ignore[arg-type]


def stream_part_lines(session: Session, job_id: int, first_tape_file: int, part: Any, cut: Any) -> Iterator[bytes]:
    """Lines for the members of a source part that is being closed at end of medium.

    Their rows still carry stream offsets of the source's first tape file
    (``spanning.place_entries`` moves them later); here they are written as
    they are on this tape.  A member cut in its data gets a ``cut`` line.
    """
    from .models import Entry, Volume

    tape_file = part.tape_file
    volume = session.get(Volume, tape_file.volume_id)
    label = volume.label if volume else ""
    rows = session.exec(
        select(Entry)
        .where(
            Entry.job_id == job_id,
            Entry.tape_file_id == first_tape_file,
            col(Entry.offset) >= part.first,
            col(Entry.offset) < cut.cut,
        )
        .order_by(col(Entry.offset))
    )
    for entry in rows:
        if cut.member is not None and entry.offset == cut.member.offset:
            continue  # the cut member is described by the "cut" line below
        fields = _fields(entry)
        fields["offset"] = entry.offset - part.base
        yield entry_line(fields, label, tape_file.file_number)
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
