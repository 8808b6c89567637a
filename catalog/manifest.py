"""The job manifest: the tape file after a job's data, one JSON line per member.

With volume labels and manifests alone the catalog can be rebuilt from tapes
(docs/format.md).  Raw paths that are not UTF-8 are carried in ``path_b64``
next to a readable ``path``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pytp.tapeio.tarwriter import MemberRecord

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


def member_line(record: MemberRecord, tape_label: str, file_number: int) -> bytes:
    """One manifest line for a member stored on ``tape_label`` in ``file_number``."""
    line: dict[str, Any] = {
        **_bytes_fields("path", record.path),
        "type": record.kind,
        "size": record.size,
        "mode": record.mode,
        "uid": record.uid,
        "gid": record.gid,
        "uname": record.uname,
        "gname": record.gname,
        "mtime_ns": record.mtime_ns,
        "ctime_ns": record.ctime_ns,
        "inode": record.inode,
        "device": record.device,
        **_bytes_fields("link", record.link_target),
        "xxh3": record.xxh3,
        "tape": tape_label,
        "tape_file": file_number,
        "offset": record.offset,
        "header_size": record.header_size,
    }
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


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
