"""Crafted virtual tapes for tests: a pytp label, raw tar archives and manifests you write yourself.

A hostile or damaged tape is easiest to describe as the bytes of its tape
files.  This helper writes them onto a virtual tape through the virtual drive
(the DESIGN.md-named fake), so the tape is laid out exactly as a drive would
lay it out: fixed blocks, one filemark after each tape file, end of data after
the last.  Nothing here goes through pytp's backup: what is on tape is only
what the test asked for.

Typical use::

    archive = tar_bytes([file_member("etc/passwd", b"root:x:0:0\\n")])
    lines = member_lines(archive, tape="PYT001L9", tape_file=1)
    payload = manifest_payload(manifest_job(tape_files=[("PYT001L9", 1, "/etc", archive)]), lines)
    write_tape(library_tape(site / "lib", "PYT001L9"), [archive, Manifest(payload)], label="PYT001L9")

then ``pytp catalog rebuild`` reads it like any other tape of the library.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytp.catalog.manifest import MANIFEST_MEMBER, MANIFEST_VERSION
from pytp.tapeio.hashing import ContentHasher
from pytp.tapeio.smallarchive import write_small_archive
from pytp.tapeio.tarformat import KIND_BY_TYPE
from pytp.tapeio.virtual_drive import VirtualDrive, create_virtual_drive, load_tape, unload_tape
from pytp.tapeio.volume_label import LABEL_MEMBER, VolumeLabel, write_label

#: pytp's default block size, which tests should use unless they test another.
DEFAULT_BLOCK_SIZE = 512 * 1024


# --------------------------------------------------------------------------
# tar archives


def file_member(
    name: str | bytes, data: bytes, *, mode: int = 0o644, mtime: float = 1_700_000_000
) -> tuple[tarfile.TarInfo, bytes]:
    """A regular file member (``name`` without a leading ``/``, as pytp writes them)."""
    info = tarfile.TarInfo(_name(name))
    info.size, info.mode, info.mtime = len(data), mode, mtime
    return info, data


def dir_member(name: str | bytes, *, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(_name(name))
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1_700_000_000
    return info, None


def link_member(name: str | bytes, target: str | bytes, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    """A symlink (or with ``hard`` a hard link) member pointing at ``target``."""
    info = tarfile.TarInfo(_name(name))
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname, info.mode, info.mtime = _name(target), 0o777, 1_700_000_000
    return info, None


def _name(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def tar_bytes(
    members: Iterable[tuple[tarfile.TarInfo, bytes | None]], *, tar_format: int = tarfile.PAX_FORMAT
) -> bytes:
    """A whole tar archive (end-of-archive marker included) made by Python's ``tarfile``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format, encoding="utf-8", errors="surrogateescape") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@dataclass(frozen=True)
class TarMember:
    """Where one member of an archive is, as the catalog records it.

    :param offset: byte offset of its first header (a pax header when there is one).
    :param header_size: bytes of headers before its data.
    """

    name: bytes
    kind: str
    size: int
    offset: int
    header_size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime_ns: int
    linkname: bytes
    xxh3: str | None


def members_of(archive: bytes) -> list[TarMember]:
    """The members of ``archive`` with their offsets and data checksums (read by ``tarfile``)."""
    found = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
        for info in tf:
            digest = None
            if info.isreg():
                hasher = ContentHasher()
                hasher.update(archive[info.offset_data : info.offset_data + info.size])
                digest = hasher.hexdigest()
            found.append(
                TarMember(
                    name=info.name.encode("utf-8", "surrogateescape"),
                    kind=KIND_BY_TYPE.get(info.type, "other"),
                    size=info.size if info.isreg() else 0,
                    offset=info.offset,
                    header_size=info.offset_data - info.offset,
                    mode=info.mode,
                    uid=info.uid,
                    gid=info.gid,
                    uname=info.uname,
                    gname=info.gname,
                    mtime_ns=int(info.mtime * 1_000_000_000),
                    linkname=info.linkname.encode("utf-8", "surrogateescape"),
                    xxh3=digest,
                )
            )
    return found


# --------------------------------------------------------------------------
# manifests


def member_lines(archive: bytes, tape: str, tape_file: int) -> list[dict[str, Any]]:
    """Valid manifest member lines for every member of ``archive`` stored as ``tape_file`` of ``tape``.

    Tests edit the returned dicts (or replace some by raw text) to make them hostile.
    """
    lines = []
    for m in members_of(archive):
        line: dict[str, Any] = {
            "path": "/" + m.name.decode("utf-8", "surrogateescape"),
            "type": m.kind,
            "size": m.size,
            "mode": m.mode,
            "uid": m.uid,
            "gid": m.gid,
            "uname": m.uname,
            "gname": m.gname,
            "mtime_ns": m.mtime_ns,
            "ctime_ns": m.mtime_ns,
            "inode": 0,
            "device": 0,
            "xxh3": m.xxh3,
            "tape": tape,
            "tape_file": tape_file,
            "offset": m.offset,
            "header_size": m.header_size,
        }
        if m.linkname:
            line["link"] = m.linkname.decode("utf-8", "surrogateescape")
        lines.append(line)
    return lines


def manifest_job(
    *,
    tape_files: Sequence[tuple[str, int, str, bytes | int]],
    job_uuid: str | None = None,
    name: str = "crafted",
    final: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
    **extra: Any,
) -> dict[str, Any]:
    """The ``job`` object of a manifest header.

    :param tape_files: ``(tape, file number, source root, archive bytes or block count)``
        for each data file of the job.
    :param extra: more (or overriding) header fields, e.g. ``problems``.
    """
    now = datetime.now(timezone.utc).isoformat()
    job: dict[str, Any] = {
        "id": 1,
        "uuid": job_uuid or str(uuidlib.uuid4()),
        "name": name,
        "label": None,
        "level": "full",
        "pool": "default",
        "host": "crafted",
        "strategy": "direct",
        "started_at": now,
        "written_at": now,
        "sources": sorted({source for _, _, source, _ in tape_files}),
        "final": final,
        "tape_files": [
            {
                "tape": tape,
                "file": number,
                "source": source,
                "blocks": blocks if isinstance(blocks, int) else -(-len(blocks) // block_size),
            }
            for tape, number, source, blocks in tape_files
        ],
        "problems": [],
    }
    job.update(extra)
    return job


def manifest_payload(job: dict[str, Any] | None, lines: Iterable[dict[str, Any] | str | bytes]) -> bytes:
    """The content of ``PYTP-MANIFEST.jsonl``: a header line for ``job``, then ``lines``.

    Dict lines are JSON-encoded; ``str``/``bytes`` lines are written as given
    (hostile lines: not JSON, truncated, huge).  ``job=None`` leaves the header
    out, so the first of ``lines`` stands where the header belongs.
    """
    out = []
    if job is not None:
        out.append(json.dumps({"pytp_manifest": MANIFEST_VERSION, "job": job}, separators=(",", ":")).encode())
    for line in lines:
        if isinstance(line, dict):
            out.append(json.dumps(line, separators=(",", ":")).encode())
        else:
            out.append(line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line)
    return b"\n".join(out) + b"\n"


def job_files(
    tape: str,
    first_file: int,
    archives: Sequence[tuple[str, bytes]],
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    **job: Any,
) -> list[TapeFileSpec]:
    """The tape files of one whole, valid job: its data archives, then its manifest.

    :param first_file: the tape file number of the first archive on ``tape``.
    :param archives: ``(source root, archive bytes)`` in order.
    :param job: passed to :func:`manifest_job` (``job_uuid``, ``name``, ...).
    """
    numbered = [(tape, first_file + i, source, data) for i, (source, data) in enumerate(archives)]
    lines = [line for _, number, _, data in numbered for line in member_lines(data, tape, number)]
    payload = manifest_payload(manifest_job(tape_files=numbered, block_size=block_size, **job), lines)
    return [*(data for *_, data in numbered), Manifest(payload)]


# --------------------------------------------------------------------------
# writing a tape


@dataclass(frozen=True)
class Manifest:
    """A manifest tape file holding ``payload`` (a one-member tar archive, as pytp writes it)."""

    payload: bytes


@dataclass(frozen=True)
class SmallArchive:
    """Any one-member tar archive as pytp writes labels and manifests (e.g. a manifest under another name)."""

    member: str
    payload: bytes


TapeFileSpec = bytes | Manifest | SmallArchive


def library_tape(library_dir: Path, barcode: str) -> Path:
    """The directory of tape ``barcode`` in a virtual library (``write_library_config``'s ``site/lib``)."""
    return Path(library_dir) / "tapes" / barcode


def make_label(
    label: str, *, pool: str = "default", block_size: int = DEFAULT_BLOCK_SIZE, barcode: str | None = None
) -> VolumeLabel:
    """A fresh, valid volume label (barcode defaults to the label, as pytp does)."""
    return VolumeLabel(
        label=label,
        uuid=str(uuidlib.uuid4()),
        pool=pool,
        block_size=block_size,
        created=datetime.now(timezone.utc).isoformat(),
        barcode=barcode if barcode is not None else label,
    )


def write_tape(
    tape_dir: Path,
    files: Sequence[TapeFileSpec],
    *,
    label: VolumeLabel | str | bytes | None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    pool: str = "default",
) -> VolumeLabel | None:
    """Write a pytp label and then ``files`` onto the virtual tape at ``tape_dir``, from its start.

    Whatever the tape held is overwritten.  The tape must not sit in a drive.

    :param files: one entry per tape file after the label: ``bytes`` are
        written raw, zero-padded to whole blocks (``b""`` makes a zero-byte
        tape file: two filemarks in a row); :class:`Manifest` and
        :class:`SmallArchive` are written as pytp writes its one-member archives.
    :param label: a label text (a fresh valid label), a :class:`VolumeLabel`
        (e.g. one that lies), raw ``PYTP-LABEL.json`` content (damaged), or
        None for no label at all (``files`` then start at tape file 0).
    :returns: the label written, when it was one.
    """
    if isinstance(label, str):
        label = make_label(label, pool=pool, block_size=block_size)
    scratch = Path(tempfile.mkdtemp(prefix="crafted-drive-"))
    try:
        create_virtual_drive(scratch / "drive")
        load_tape(scratch / "drive", tape_dir)
        try:
            with VirtualDrive(scratch / "drive", name="crafter") as drive:
                drive.set_block_size(block_size)
                drive.rewind()
                if isinstance(label, VolumeLabel):
                    write_label(drive, block_size, label)
                elif isinstance(label, bytes):
                    write_small_archive(drive, block_size, LABEL_MEMBER, label)
                for spec in files:
                    _write_file(drive, block_size, spec)
        finally:
            unload_tape(scratch / "drive")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return label if isinstance(label, VolumeLabel) else None


def _write_file(drive: VirtualDrive, block_size: int, spec: TapeFileSpec) -> None:
    if isinstance(spec, Manifest):
        write_small_archive(drive, block_size, MANIFEST_MEMBER, spec.payload)
    elif isinstance(spec, SmallArchive):
        write_small_archive(drive, block_size, spec.member, spec.payload)
    else:
        if spec:
            drive.write(spec + b"\0" * (-len(spec) % block_size))
        drive.weof(1)
