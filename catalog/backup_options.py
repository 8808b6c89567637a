"""What a backup is asked to do and what it reports: the values ``run_backup`` takes and returns.

Kept apart from the job's machinery so the modules it is split into
(``backup_job``, ``backup_stream``, ``tape_change``, ``manifest_writer``)
can share them without importing each other in a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pytp.tapeio.buffer import BufferStats
from pytp.tapeio.exclude import Exclusions

LEVELS = ("full", "incremental", "differential")
STRATEGIES = ("direct", "tar", "dd")


@dataclass
class BackupOptions:
    """What to back up and how.

    :param sources: directories or files; each becomes one tape file.
    :param job_name: ``--job``: the name of the backup chain.
    :param job_label: ``--label``: the original pytp's label for the chain.
    :param pool: the pool to write to (default: the configured default pool).
    :param buffer_bytes: size of the memory buffer in front of the drive.
    :param start_percent: the drive starts once the buffer is this full.
    """

    sources: list[str]
    job_name: str | None = None
    job_label: str | None = None
    level: str = "full"
    strategy: str = "direct"
    pool: str | None = None
    buffer_bytes: int = 256 << 20
    start_percent: int = 20
    #: incremental/differential: also compare content (xxh3) when metadata agrees
    checksum: bool = False
    #: tar strategy: how many archives are staged at once
    max_concurrent_tars: int = 2
    #: ``--exclude``, ``--exclude-from``, ``--one-file-system`` (issue 11)
    exclude: Exclusions = field(default_factory=Exclusions)
    #: a drive without changer fills up: show the request, return once the
    #: operator inserted a tape (False gives up); None fails the job instead
    ask_for_tape: Callable[[str], bool] | None = None
    #: what the job leaves in the drive (``media.open_media``): False, the
    #: command's default, returns a library's tape to its home slot; True
    #: (``--keep-loaded``) and None (callers of the core API) leave it loaded
    keep_loaded: bool | None = None


@dataclass
class Progress:
    files: int = 0
    bytes: int = 0
    source: str = ""
    buffer: BufferStats | None = None


@dataclass
class BackupResult:
    job_id: int
    status: str
    files: int
    bytes: int
    seconds: float
    tapes: list[str]
    tape_files: list[tuple[str, int, str, int]]  # (tape, file number, source, blocks)
    problems: list[tuple[str, str]] = field(default_factory=list)
    buffer_high_water: int = 0
    buffer_underruns: int = 0
    level: str = "full"
    deleted: int = 0
    notes: list[str] = field(default_factory=list)
