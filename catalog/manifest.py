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
