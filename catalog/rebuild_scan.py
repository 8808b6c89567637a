"""Reading one tape for a rebuild: what each tape file is, from its first block.

Nothing here touches the catalog: a tape is read first, then imported in one
transaction (``rebuild``), so a rebuild killed while a tape is read leaves
nothing of that tape behind.  Every problem is kept with its tape file (and
manifest line) instead of ending the scan: one bad file must not hide the
rest of the tape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pytp.tapeio.drive import UNKNOWN, Drive
from pytp.tapeio.errors import BlankTape, BlockSizeError, MediumError, TapeIOError
from pytp.tapeio.smallarchive import archive_blocks, peek_member_name, small_archive_blocks, stream_small_archive

from .manifest import MANIFEST_MEMBER, SNAPSHOT_MEMBER, ReadManifest, read_manifest
from .record_spool import RecordSpool, SegmentWriter

DATA = "data"
MANIFEST = "manifest"
SNAPSHOT = "snapshot"
#: a tape file with no block at all: two filemarks in a row
EMPTY = "empty"
#: its first block could not be read
UNREADABLE = "unreadable"

#: The largest manifest read: a million members take ~350 MB, so 4 GiB is
#: some twelve million.  Its lines are spooled to disk, not held in memory;
#: the limit only refuses a header that claims absurd sizes.
MAX_MANIFEST = 4 << 30
#: Bad lines listed one by one per manifest; a manifest of garbage must not
#: bury the other tapes' problems under millions of lines.
MAX_LINES_REPORTED = 50


@dataclass
class SeenFile:
    """One tape file after the label.

    :param blocks: a manifest's length in blocks (what pytp wrote for it).
    :param manifest: a manifest's content; None when it could not be read.
    """

    number: int
    kind: str
    blocks: int = 0
    manifest: ReadManifest | None = None


@dataclass
class Finding:
    """A problem (or, with ``problem`` False, a note) on one tape file."""

    file: int | None
    message: str
    line: int | None = None
    problem: bool = True


@dataclass
class TapeScan:
    """What ``scan_tape`` found; the manifests' member lines wait in ``spool`` (close it when done).

    A manifest still to be imported again (``rebuild``'s second pass) keeps the spool open.
    """

    files: list[SeenFile] = field(default_factory=list)
    #: end of data was reached: the tape's file count is known
    reached_end: bool = False
    findings: list[Finding] = field(default_factory=list)
    spool: RecordSpool = field(default_factory=RecordSpool)

    @property
    def file_count(self) -> int:
        """Tape files on the tape, the label included."""
        return len(self.files) + 1


def goto_file(drive: Drive, number: int) -> None:
    """Put the drive at block 0 of tape file ``number``.

    Spaces forward from where the drive says it is; when it does not know, or
    the file is behind it, from the beginning of the tape.
    """
    status = drive.status()
    if status.file_number == number and status.block_number == 0:
        return
    if status.file_number != UNKNOWN and status.file_number < number:
        drive.fsf(number - status.file_number)
        return
    drive.rewind()
    if number:
        drive.fsf(number)


def scan_tape(drive: Drive, block_size: int) -> TapeScan:
    """Look at every tape file after the label by its first block; read manifests whole.

    Data files are passed by filemark, so a scan reads one block of each.  A
    zero-byte tape file is recorded as one (pytp writes none, but a crash or
    another program can leave one) and the scan goes on: only end of data
    ends it.

    :param drive: a drive holding the tape, set to ``block_size``.
    """
    scan = TapeScan()
    number = 1
    while True:
        try:
            goto_file(drive, number)
        except MediumError as err:
            scan.findings.append(Finding(number, f"cannot space to this tape file ({err}); the rest is not read"))
            return scan
        try:
            first = drive.read(block_size)
        except BlankTape:
            first = b""
        except BlockSizeError as err:
            scan.findings.append(Finding(number, f"{err}; the rest of the tape is not read"))
            return scan
        except MediumError as err:
            scan.findings.append(Finding(number, f"first block unreadable ({err}); tape file skipped"))
            scan.files.append(SeenFile(number, UNREADABLE))
            number += 1
            continue
        if not first:
            # An empty read is either end of data or a filemark right at the
            # start of this file; only the filemark moves the drive on.
            if drive.status().file_number == number + 1:
                scan.findings.append(Finding(number, "empty tape file (no data between two filemarks)", problem=False))
                scan.files.append(SeenFile(number, EMPTY))
                number += 1
                continue
            scan.reached_end = True
            return scan
        kind = peek_member_name(first)
        if kind == MANIFEST_MEMBER:
            scan.files.append(_read_manifest_file(drive, block_size, number, first, scan))
        elif kind == SNAPSHOT_MEMBER:
            # Its length from its header: a rebuild checks the tape file holds it whole.
            scan.files.append(SeenFile(number, SNAPSHOT, small_archive_blocks(first, block_size) or 0))
        else:
            scan.files.append(SeenFile(number, DATA))  # the rest of it is passed by the next fsf
        number += 1


#: what :func:`length_against` says of a tape file whose blocks are all there, but no filemark after them
UNENDED = "unended"


def length_against(drive: Drive, number: int, blocks: int, block_size: int) -> str | None:
    """Whether tape file ``number`` holds exactly ``blocks`` blocks: None when it does, else
    "shorter", "longer" or :data:`UNENDED` (no filemark after them: a write cut at its end).

    The blocks are spaced over (``fsr``) and the filemark read right after them: one
    positioning and one read, whatever the file's size.
    """
    try:
        goto_file(drive, number)
        if blocks:
            drive.fsr(blocks)
    except MediumError:
        # st and the virtual drive stop at the filemark, past it.  An
        # unreadable block on the way ends up here too: its data is lost alike.
        return "shorter"
    try:
        after = drive.read(block_size)
    except TapeIOError:
        return UNENDED
    return "longer" if after else None


def first_blocks(drive: Drive, block_size: int) -> Iterator[tuple[int, bytes | MediumError]]:
    """``(tape file number, its first block)`` of each tape file after the label that has one.

    A tape file whose first block cannot be read comes with the error
    instead; zero-byte tape files are passed.  The walk ends at end of data,
    or where the drive cannot space on or read at ``block_size`` (a tape of
    other blocks).  :func:`scan_tape` walks the same way, keeping what it finds.
    """
    number = 1
    while True:
        try:
            goto_file(drive, number)
        except TapeIOError:
            return
        try:
            first = drive.read(block_size)
        except BlankTape:
            first = b""
        except MediumError as err:
            yield number, err
            number += 1
            continue
        except TapeIOError:
            return
        if first:
            yield number, first
        elif drive.status().file_number != number + 1:
            return  # end of data: only a filemark moves the drive on
        number += 1


def first_pytp_file(drive: Drive, block_size: int) -> tuple[int, str] | None:
    """The first tape file after the label that holds a pytp manifest or catalog snapshot, and which.

    A tape whose label cannot be read is either another program's tape or a
    pytp tape whose label was damaged; only the second holds pytp manifests,
    and its jobs would be lost from a rebuild without a word.
    """
    for number, first in first_blocks(drive, block_size):
        if isinstance(first, bytes) and (kind := peek_member_name(first)) in (MANIFEST_MEMBER, SNAPSHOT_MEMBER):
            return number, "manifest" if kind == MANIFEST_MEMBER else "catalog snapshot"
    return None


def _read_manifest_file(drive: Drive, block_size: int, number: int, first: bytes, scan: TapeScan) -> SeenFile:
    try:
        _, pieces = stream_small_archive(
            drive, block_size, max_size=MAX_MANIFEST, first_block=first, expect=MANIFEST_MEMBER
        )
        counted = _Counted(pieces)
        manifest = read_manifest(counted, SegmentWriter(scan.spool), keep_problems=MAX_LINES_REPORTED)
    except TapeIOError as err:  # not tar, cut short, an I/O error
        scan.findings.append(Finding(number, f"manifest unreadable ({err})"))
        return SeenFile(number, MANIFEST)
    for problem in manifest.problems:
        scan.findings.append(Finding(number, problem.message, line=problem.line))
    if manifest.problem_count > MAX_LINES_REPORTED:
        more = manifest.problem_count - MAX_LINES_REPORTED
        scan.findings.append(Finding(number, f"and {more} more bad line(s), not listed"))
    # One ustar header, the padded content, the end-of-archive marker.
    blocks = archive_blocks(counted.bytes, block_size)
    return SeenFile(number, MANIFEST, blocks, manifest)


class _Counted:
    """The pieces of a manifest, counted as they pass."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self.pieces = pieces
        self.bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.bytes += len(piece)
            yield piece
