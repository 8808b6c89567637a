"""Staging for the ``tar`` and ``dd`` strategies: archives on disk before tape.

The original pytp's ``tar`` strategy built each source's archive in ``tar_dir``
first (several at once with ``--max-concurrent-tars``) and then streamed it to
tape through the memory buffer; ``dd`` wrote the staged file without the
buffer.  pytp keeps both, with the same archive bytes and catalog as
``direct``: staging only changes when the bytes are produced.

Staged files live in a per-job directory inside ``tar_dir`` named with the
pid, removed on every exit path; a directory left by a killed pytp is removed
by the next staged backup.  The space needed is checked before anything runs.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from pytp.tapeio.blockio import BlockAssembler
from pytp.tapeio.continuation import MemberStart
from pytp.tapeio.exclude import Exclusions
from pytp.tapeio.procinfo import pid_alive
from pytp.tapeio.sparse import stored_size_bound
from pytp.tapeio.tarformat import END_OF_ARCHIVE, padded
from pytp.tapeio.tarwriter import ArchiveWriter, MemberRecord, Problem, SeenPaths, walk

from .errors import ConfigError

T = TypeVar("T")

_STAGE_DIR = re.compile(r"^pytp-job\d+-pid(\d+)-")


class StagingCancelled(Exception):
    """Raised in a staging thread when the job stops."""


class RecordSpool(Generic[T]):
    """A staged archive's member records (or member starts), pickled to a file
    beside it until the archive goes to tape.

    A source of millions of files would otherwise hold every record in memory
    while it waits its turn (issue 9).  Written by one staging thread, read
    back once, in order, by the job.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = open(path, "wb")

    def append(self, record: T) -> None:
        assert self._file is not None
        pickle.dump(record, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[T]:
        self.close()
        with open(self.path, "rb") as spool:
            while True:
                try:
                    yield pickle.load(spool)
                except EOFError:
                    return

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


@dataclass
class Staged:
    """One source's archive on disk, with what the producer saw while making it."""

    source: bytes
    path: Path
    records: Iterable[MemberRecord] = field(default_factory=list)
    #: where each member begins, for spanning (spooled like the records)
    starts: Iterable[MemberStart] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def estimate_archive_size(source: bytes) -> int:
    """Bytes the archive of ``source`` will take at most (headers with pax, padded data)."""
    total = 2 * 512
    for _, st in walk(source, lambda problem: None):
        total += 3 * 512  # a pax header, its records, the ustar header
        if stat.S_ISREG(st.st_mode):
            # A file with holes is stored sparse: only its allocated data goes.
            total += padded(stored_size_bound(st.st_size, st.st_blocks))
    return total


class StagingArea:
    """The job's staging directory in ``tar_dir``.

    :param tar_dir: the configured staging folder.
    :param job_id: for the directory's name.
    """

    def __init__(self, tar_dir: str | None, job_id: int) -> None:
        if not tar_dir:
            raise ConfigError("The tar and dd strategies stage archives in tar_dir; set tar_dir in the configuration.")
        self.root = Path(tar_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        self.path = Path(tempfile.mkdtemp(prefix=f"pytp-job{job_id}-pid{os.getpid()}-", dir=self.root))
        #: set when the job fails: staging threads stop at their next chunk
        self.cancelled = threading.Event()

    def _remove_stale(self) -> None:
        """Directories of pytp processes that are gone (killed before they could clean up)."""
        for entry in self.root.iterdir():
            match = _STAGE_DIR.match(entry.name)
            if match and entry.is_dir() and not pid_alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)

    def check_space(self, sources: list[bytes], concurrent: int) -> None:
        """Refuse to start when the largest ``concurrent`` archives would not fit.

        :raises ConfigError: not enough free space in ``tar_dir``.
        """
        sizes = sorted((estimate_archive_size(s) for s in sources), reverse=True)
        needed = sum(sizes[: max(1, concurrent)])
        free = shutil.disk_usage(self.path).free
        if needed > free:
            raise ConfigError(
                f"Staging needs up to {needed / 2**30:.2f} GiB in {self.root} but only {free / 2**30:.2f} GiB "
                "are free; nothing was written. Free space, set another tar_dir, lower --max-concurrent-tars, "
                "or use --strategy direct."
            )

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> StagingArea:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def stage_source(
    area: StagingArea,
    index: int,
    source: bytes,
    block_size: int,
    select: Callable[[bytes, os.stat_result], bool] | None,
    on_bytes: Callable[[int], None] | None = None,
    exclude: Exclusions | None = None,
    seen: SeenPaths | None = None,
) -> Staged:
    """Write the archive of ``source`` into the staging area, block-padded as on tape.

    :param seen: told what the walk finds (``ArchiveWriter.add_tree``).
    """
    records: RecordSpool[MemberRecord] = RecordSpool(area.path / f"{index:04d}.records")
    starts: RecordSpool[MemberStart] = RecordSpool(area.path / f"{index:04d}.starts")
    staged = Staged(source, area.path / f"{index:04d}.tar", records, starts)

    def progress(count: int) -> None:
        if area.cancelled.is_set():
            raise StagingCancelled("staging stopped: the job failed or was interrupted")
        if on_bytes is not None:
            on_bytes(count)

    try:
        with open(staged.path, "wb") as out_file:
            out = BlockAssembler(out_file.write, block_size)
            archive = ArchiveWriter(out, records.append, staged.problems.append, progress, starts.append)
            archive.add_tree(source, select, exclude, seen)
            out.write(END_OF_ARCHIVE)
            out.finish()
    finally:
        records.close()  # read back by the job; closed here on failure too
        starts.close()
    return staged
