"""The job manifest: the tape file after a job's data, one JSON line per member.

With volume labels and manifests alone the catalog can be rebuilt from tapes
(docs/format.md).  Raw paths that are not UTF-8 are carried in ``path_b64``
next to a readable ``path``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pytp.tapeio.sparse import parse_map

from .backup_options import LEVELS, STRATEGIES
from .record_spool import Segment, SegmentWriter

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


# --------------------------------------------------------------------------
# reading a manifest from tape: nothing in it is trusted
#
# A manifest may come from a damaged tape or a hostile one (issue 8): every
# line is checked before it becomes a catalog row, and a bad line is reported
# by number and skipped, never a crash.  Paths must stay absolute and free of
# ".." so that no row can later send a restore outside its target.

#: Longer member lines than pytp writes (paths, links and a parts list of a
#: member cut over many tapes stay far below): refused unread.
MAX_MEMBER_LINE = 1 << 20
#: Member kinds pytp writes (``deleted``: a path gone since the previous job).
MEMBER_KINDS = frozenset({"file", "hardlink", "symlink", "chardev", "blockdev", "dir", "fifo", "deleted"})
_INT64 = 1 << 63
#: More blocks than any tape file holds (and few enough that blocks times
#: the block size stays a 64-bit number).
MAX_BLOCKS = 1 << 36
_UUID_CHARS = frozenset("0123456789abcdefABCDEF-")


@dataclass
class ManifestProblem:
    """One bad line (1-based; None: the manifest as a whole)."""

    line: int | None
    message: str


@dataclass
class ReadManifest:
    """A manifest as read from tape; its member lines wait on disk (issue 9: bounded memory).

    :param job: the header's job object, checked; None when the header is unreadable.
    :param spooled: ``(line number, member line)`` of every line that passed
        the checks, in a spool (``record_spool``); iterate :attr:`lines`.
    :param problems: the first problems found (``keep_problems`` of :func:`read_manifest`).
    :param problem_count: every problem found, listed or not.
    :param bad_lines: member lines refused (the header line aside).
    """

    job: dict[str, Any] | None
    spooled: Segment | None = None
    problems: list[ManifestProblem] = field(default_factory=list)
    problem_count: int = 0
    bad_lines: int = 0
    #: parts of the header refused or dropped (its tape files, problems, times…)
    header_problems: int = 0
    #: tape labels read as others (``alias_tapes``)
    tape_aliases: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return bool(self.job.get("final", True)) if self.job else False

    @property
    def lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """The checked member lines, read again from the spool on each call."""
        lines: Iterator[tuple[int, dict[str, Any]]] = iter(self.spooled) if self.spooled is not None else iter(())
        if not self.tape_aliases:
            return lines
        return ((number, _aliased(line, self.tape_aliases)) for number, line in lines)

    def alias_tapes(self, aliases: dict[str, str]) -> None:
        """Read the tape labels of ``aliases`` as the labels they map to, in the header and every line.

        A copy tape holds its source's manifests byte for byte, naming the
        source's label; imported as the original of its jobs (its source is
        lost), they must name the copy.
        """
        self.tape_aliases = dict(aliases)
        if self.job is not None:
            self.job["tape_files"] = [
                {**piece, "tape": aliases.get(piece["tape"], piece["tape"])} for piece in self.job["tape_files"]
            ]

    @property
    def line_count(self) -> int:
        return len(self.spooled) if self.spooled is not None else 0

    @property
    def damaged(self) -> bool:
        """Some member lines were refused: members they described are missing."""
        return self.bad_lines > 0


def _aliased(line: dict[str, Any], aliases: dict[str, str]) -> dict[str, Any]:
    line = {**line, "tape": aliases.get(line["tape"], line["tape"])}
    if line.get("parts"):
        line["parts"] = [{**part, "tape": aliases.get(part["tape"], part["tape"])} for part in line["parts"]]
    return line


def _is_int(value: Any, low: int = -_INT64, high: int = _INT64 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def safe_path(path: bytes) -> str | None:
    """Why ``path`` may not become a catalog row (None: it may).

    Catalog paths are absolute (``/home/a``); restore puts them under its
    target by dropping the leading ``/``, so a ``..`` component or a NUL would
    take it elsewhere.
    """
    if not path.startswith(b"/"):
        return "is not an absolute path"
    if b"\0" in path:
        return "contains a NUL byte"
    if b".." in path.split(b"/"):
        return "contains a '..' component"
    if len(path) > 65536:
        return f"is {len(path)} bytes long"
    return None


def _raw_checked(line: dict[str, Any], name: str) -> bytes | None:
    """``_raw`` for an untrusted line: ``name``/``name_b64`` must be text, the b64 valid."""
    if f"{name}_b64" in line:
        encoded = line[f"{name}_b64"]
        if not isinstance(encoded, str):
            raise ValueError(f"'{name}_b64' is not text")
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError as err:
            raise ValueError(f"'{name}_b64' is not base64") from err
    value = line.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{name}' is not text")
    return value.encode("utf-8", "surrogateescape") if value is not None else None


def check_member_line(line: Any) -> str | None:
    """Why a member line of a manifest cannot be used (None: it can).

    Checks types and ranges only; where the member is (its tape file exists,
    its offset fits in it) is for the reader that knows the tape.
    """
    if not isinstance(line, dict):
        return "is not a JSON object"
    kind = line.get("type")
    if not isinstance(kind, str) or kind not in MEMBER_KINDS:
        return f"has an unknown member type {kind!r}"
    try:
        path = _raw_checked(line, "path")
        link = _raw_checked(line, "link")
    except ValueError as err:
        return str(err)
    if path is None:
        return "has no path"
    why = safe_path(path)
    if why:
        return f"path {path_text_of(path)!r} {why}"
    if kind == "hardlink":
        why = "has no target" if link is None else safe_path(link)
        if why:
            return f"hard link target {path_text_of(link or b'')!r} {why}"
    if link is not None and b"\0" in link:
        return "link target contains a NUL byte"
    for name, low, high in (
        ("size", 0, _INT64 - 1),
        ("mode", 0, 0o177777),
        ("uid", 0, (1 << 32) - 1),
        ("gid", 0, (1 << 32) - 1),
        ("mtime_ns", -_INT64, _INT64 - 1),
        ("ctime_ns", -_INT64, _INT64 - 1),
        ("inode", 0, _INT64 - 1),
        ("device", 0, _INT64 - 1),
        ("tape_file", 1, (1 << 31) - 1),
        ("header_size", 0, 1 << 30),
    ):
        if not _is_int(line.get(name), low, high):
            return f"'{name}' is {line.get(name)!r}, not a whole number from {low} to {high}"
    offset = line.get("offset")
    if kind == "deleted":
        if offset != -1:
            return f"'offset' of a deleted path is {offset!r}, not -1"
    elif not _is_int(offset, 0, _INT64 - 1) or offset % 512:
        return f"'offset' is {offset!r}, not a whole number of 512-byte records"
    elif line["header_size"] < 512 or line["header_size"] % 512:
        return f"'header_size' is {line['header_size']!r}, not a whole number of 512-byte records"
    for name in ("uname", "gname", "tape"):
        if not isinstance(line.get(name), str):
            return f"'{name}' is {line.get(name)!r}, not text"
    xxh3 = line.get("xxh3")
    if xxh3 is not None and not (isinstance(xxh3, str) and len(xxh3) == 32 and set(xxh3) <= _UUID_CHARS - {"-"}):
        return f"'xxh3' is {xxh3!r}, not an xxh3-128 in hex"
    sparse_map = line.get("sparse_map")
    if sparse_map is not None:
        try:
            if kind != "file" or not isinstance(sparse_map, str):
                raise ValueError("only a file has one, as text")
            parse_map(sparse_map)
        except ValueError as err:
            return f"'sparse_map' is not a sparse map ({err})"
    parts = line.get("parts")
    if parts is not None:
        if not isinstance(parts, list) or not parts:
            return "'parts' is not a list of parts"
        for part in parts:
            if not isinstance(part, dict) or not isinstance(part.get("tape"), str):
                return "'parts' holds an entry that is not a part"
            for name in ("part", "tape_file", "offset", "header_size", "data_start", "data_size"):
                if not _is_int(part.get(name), 0, _INT64 - 1):
                    return f"a part's '{name}' is {part.get(name)!r}, not a whole number"
    return None


def path_text_of(path: bytes) -> str:
    """A short display form of an untrusted path for messages."""
    text = path.decode("utf-8", "backslashreplace")
    return text if len(text) <= 200 else text[:200] + "..."


def _check_job(job: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """The header's job object with bad optional parts dropped, and what was wrong.

    None when what identifies the job (its uuid) is unusable.
    """
    if not isinstance(job, dict):
        return None, ["the header's 'job' is not a JSON object"]
    uuid = job.get("uuid")
    if not (isinstance(uuid, str) and 0 < len(uuid) <= 64 and set(uuid) <= _UUID_CHARS):
        return None, [f"the header's job uuid {uuid!r} is not a uuid"]
    problems = []
    clean = dict(job)
    for name in ("name", "label", "pool", "host"):
        if not _opt_str(clean.get(name)):
            problems.append(f"the job's '{name}' is {clean[name]!r}, not text")
            clean[name] = None
    for name, default, known in (("level", "full", LEVELS), ("strategy", "direct", STRATEGIES)):
        if clean.get(name, default) not in known:
            problems.append(f"the job's '{name}' is {clean[name]!r}, not one of {', '.join(known)}")
            clean[name] = default
    for name in ("started_at", "written_at"):
        value = clean.get(name)
        try:
            if value is not None:
                datetime.fromisoformat(value)
        except (TypeError, ValueError):
            problems.append(f"the job's '{name}' is {value!r}, not a time")
            clean[name] = None
    if not isinstance(clean.get("final", True), bool):
        problems.append(f"the job's 'final' is {clean['final']!r}, not true or false")
        clean["final"] = False
    sources = clean.get("sources", [])
    if not (isinstance(sources, list) and all(isinstance(s, str) for s in sources)):
        problems.append("the job's 'sources' is not a list of paths")
        clean["sources"] = []
    pieces = []
    raw_pieces = clean.get("tape_files", [])
    for piece in raw_pieces if isinstance(raw_pieces, list) else [raw_pieces]:
        if (
            isinstance(piece, dict)
            and isinstance(piece.get("tape"), str)
            and _is_int(piece.get("file"), 1, (1 << 31) - 1)
            and isinstance(piece.get("source"), str)
            and _is_int(piece.get("blocks"), 0, MAX_BLOCKS)
        ):
            pieces.append(piece)
        else:
            problems.append(f"the job's tape file entry {repr(piece)[:200]} is not a tape file")
    clean["tape_files"] = pieces
    kept = []
    raw_problems = clean.get("problems", [])
    for p in raw_problems if isinstance(raw_problems, list) else [raw_problems]:
        if isinstance(p, dict) and isinstance(p.get("path"), str) and isinstance(p.get("message"), str):
            kept.append(p)
        else:
            problems.append(f"the job's problem entry {repr(p)[:200]} is not a problem")
    clean["problems"] = kept
    return clean, problems


class _Problems:
    """The problems of one manifest: the first ``keep`` listed, all counted."""

    def __init__(self, result: ReadManifest, keep: int) -> None:
        self.result = result
        self.keep = keep

    def add(self, line: int | None, message: str) -> None:
        self.result.problem_count += 1
        if len(self.result.problems) < self.keep:
            self.result.problems.append(ManifestProblem(line, message))


def _source_roots(job: dict[str, Any] | None) -> dict[tuple[object, object], bytes]:
    """Each tape file's source root, by ``(tape, file number)``, from a checked header."""
    if not job:
        return {}
    return {
        (piece["tape"], piece["file"]): piece["source"].encode("utf-8", "surrogateescape").rstrip(b"/")
        for piece in job.get("tape_files", [])
    }


def _outside_its_source(line: dict[str, Any], roots: dict[tuple[object, object], bytes]) -> str | None:
    """Why a member line names a path (or a hard link target) outside the source its tape
    file backed up, which no backup writes: a lying manifest would put ``/etc/…`` into a
    job of ``/home`` (None: inside, or its tape file is not in the header)."""
    root = roots.get((line.get("tape"), line.get("tape_file")))
    if root is None:
        return None
    for name, what in (("path", "path"), ("link", "hard link target")):
        if name == "link" and line.get("type") != "hardlink":
            continue
        value = _raw_checked(line, name)
        if value is not None and value != root and not value.startswith(root + b"/") and root:
            return f"{what} {path_text_of(value)!r} is outside the source {path_text_of(root)!r} of its tape file"
    return None


def read_manifest(pieces: Iterable[bytes], spool: SegmentWriter, keep_problems: int = 1 << 62) -> ReadManifest:
    """Parse and check a manifest read from tape; never raises on its content.

    Lines that are not JSON, have wrong-typed or absurd fields, unsafe paths,
    or are longer than :data:`MAX_MEMBER_LINE` are reported and left out.
    The lines that pass go to ``spool`` as they are read: a manifest of
    millions of members is never held in memory.

    :param pieces: the manifest's bytes, in pieces of any size.
    :param keep_problems: problems listed (the rest are only counted).
    :raises: only what iterating ``pieces`` raises (a tape read error, a cut manifest).
    """
    result = ReadManifest(job=None)
    problems = _Problems(result, keep_problems)
    roots: dict[tuple[object, object], bytes] = {}
    for number, raw, length in split_lines(pieces):
        if number == 1:
            _read_header(raw, result, problems)
            roots = _source_roots(result.job)
            continue
        if raw is None:
            problems.add(number, f"is {length} bytes long, not a member line")
            result.bad_lines += 1
            continue
        try:
            line = json.loads(raw)
        except (ValueError, RecursionError):
            problems.add(number, "is not JSON")
            result.bad_lines += 1
            continue
        if isinstance(line, dict) and "cut" in line and "type" not in line:
            continue  # a part manifest's note of the member continued on the next tape
        why = check_member_line(line) or _outside_its_source(line, roots)
        if why:
            problems.add(number, why)
            result.bad_lines += 1
            continue
        spool.append((number, line))
    result.spooled = spool.finish()
    return result


def _read_header(raw: bytes | None, result: ReadManifest, problems: _Problems) -> None:
    try:
        header = json.loads(raw) if raw is not None and raw.strip() else None
    except (ValueError, RecursionError):
        problems.add(1, "the header line is not JSON")
        return
    if not (isinstance(header, dict) and header.get("pytp_manifest") == MANIFEST_VERSION):
        problems.add(1, f"the header line is not a version {MANIFEST_VERSION} manifest header")
        return
    result.job, messages = _check_job(header.get("job"))
    result.header_problems = len(messages)
    for message in messages:
        problems.add(1, message)


#: The header line holds the job, its tape files and its problems: per
#: problem, not per member, and read whole (as the backup keeps its problems).
MAX_HEADER_LINE = 1 << 30


def split_lines(pieces: Iterable[bytes]) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line number, line, length)`` of each line that is not blank, from the bytes in pieces.

    A member line longer than :data:`MAX_MEMBER_LINE` (the header line: than
    :data:`MAX_HEADER_LINE`) is not kept: its line is None, its length counted,
    so no line of a hostile manifest is held whole.  Blank lines (ASCII
    whitespace) are numbered but not given, as ``bytes.split`` then ``strip``
    would; the header line always is, even empty.
    """
    number = 1
    line = _LineParts()
    for piece in pieces:
        start = 0
        while True:
            cut = piece.find(b"\n", start)
            if cut < 0:
                line.add(piece[start:], MAX_HEADER_LINE if number == 1 else MAX_MEMBER_LINE)
                break
            if not line.length:
                # The common case, a whole line inside the piece: no copy but the slice.
                whole = piece[start:cut]
                if whole.strip() or number == 1:
                    too_long = len(whole) > (MAX_HEADER_LINE if number == 1 else MAX_MEMBER_LINE)
                    yield number, None if too_long else whole, len(whole)
            else:
                line.add(piece[start:cut], MAX_HEADER_LINE if number == 1 else MAX_MEMBER_LINE)
                if line.keep or number == 1:
                    yield number, line.join(), line.length
                line = _LineParts()
            number += 1
            start = cut + 1
    if line.length and (line.keep or number == 1):
        yield number, line.join(), line.length
    elif number == 1:
        yield 1, b"", 0


class _LineParts:
    """A line that goes on over pieces; dropped (counted only) once longer than its limit."""

    def __init__(self) -> None:
        self.parts: list[bytes] | None = []
        self.length = 0
        #: not whitespace alone
        self.keep = False

    def add(self, part: bytes, limit: int) -> None:
        self.length += len(part)
        self.keep = self.keep or bool(part.strip())
        if self.parts is not None:
            self.parts.append(part)
            if self.length > limit:
                self.parts = None

    def join(self) -> bytes | None:
        return None if self.parts is None else b"".join(self.parts)


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
        sparse_map=line.get("sparse_map"),
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
    if fields.get("sparse_map") is not None:
        line["sparse_map"] = fields["sparse_map"]
    if parts:
        line["parts"] = parts
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


#: the ``Entry`` columns a member line is made of (``manifest_writer`` selects them)
ENTRY_COLUMNS = (
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
    "sparse_map",
)
