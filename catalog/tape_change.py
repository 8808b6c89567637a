"""The end-of-tape hand-off: how a job moves on to its next tape.

The drive writer side (``spanning.SpanningSink``, in the writer thread for
the buffered strategies) reports end of medium as an :class:`EndOfTape`
and gets a :class:`NextTape` back: nothing else passes between the two.
:class:`TapeChange` does the work in between: close the full tape's data
file, load the next tape (from the changer, or from the operator of a
standalone drive), write the full tape's part manifest there first
(docs/format.md, "Spanning"), and open the next data file.  Its catalog
writes go through ``JobRecord``, which gives each its own session, so the
writer thread never uses a session of the main thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from pytp.tapeio.continuation import Resume
from pytp.tapeio.drive import Drive, ensure_block_size
from pytp.tapeio.errors import TapeIOError

from .backup_job import EntrySink, JobRecord
from .errors import TapeFull, WrongTape
from .manifest_writer import Spool, manifest_lines, place_manifest, stream_part_lines
from .media import Media, NoTapeAvailable
from .models import TapeFile, Volume
from .spanning import Part


@dataclass(frozen=True)
class EndOfTape:
    """The drive reported end of medium while a source's archive was being written.

    :param source: the source whose archive continues on the next tape.
    :param resume: where and how the archive continues (``tapeio.continuation``).
    :param full_part: the part of the archive on the full tape.
    :param blocks: that part's blocks on tape.
    """

    source: bytes
    resume: Resume
    full_part: Part
    blocks: int


class NextTape(NamedTuple):
    """Where the archive goes on: the drive, positioned in the new tape file."""

    drive: Drive
    tape_file: TapeFile


class TapeChange:
    """Moves a job to the next tape of its pool.

    :param ask_for_tape: for a drive without changer (``BackupOptions.ask_for_tape``).
    """

    def __init__(
        self,
        record: JobRecord,
        media: Media,
        sink: EntrySink,
        pool: str,
        ask_for_tape: Callable[[str], bool] | None,
    ) -> None:
        self.record = record
        self.media = media
        self.sink = sink
        self.pool = pool
        self.ask_for_tape = ask_for_tape

    def first_tape(self) -> Volume:
        """Mount the job's first tape."""
        volume = self.record.mount(self.media, self.pool)
        ensure_block_size(self.media.drive, self.media.block_size)
        return volume

    def on_end_of_tape(self, event: EndOfTape) -> NextTape:
        """Close the full tape, go on on the next one.

        The full tape's part manifest is the first file after the next tape's
        label, before the rest of the data (docs/format.md, "Spanning"): it
        never has to fit in the full tape's early-warning zone.
        """
        record, engine = self.record, self.record.engine
        self.media.drive.weof(1)  # filemarks still fit in the early-warning zone
        record.complete(event.full_part.tape_file, event.blocks, event.source)
        self.sink.flush()
        full = self.change_tape()
        first = self.sink.tape_file_id  # the source's first tape file: its rows are not in place yet
        lines = itertools.chain(
            manifest_lines(engine, record.job_id, full.id, first),
            stream_part_lines(engine, record.job_id, first, event.full_part, event.resume),
        )
        with Spool(lines) as spool:
            place_manifest(record, self.media, spool, self.change_tape, final=False, describes=full)
        return NextTape(self.media.drive, record.start_tape_file(self.media.drive, "data", event.source))

    def change_tape(self) -> Volume:
        """Mark the tape full and mount the next appendable tape of the pool; return the full one."""
        full = self.record.mark_full()
        if self.media.changer is None:
            self._ask_for_tape(full.label)
        else:
            try:
                self.record.mount(self.media, self.pool)
            except NoTapeAvailable as err:
                raise TapeFull(
                    f"Tape {full.label} is full and no other tape of pool '{self.pool}' can take the rest of job "
                    f"{self.record.job_id}, which failed: {err}"
                ) from err
        ensure_block_size(self.media.drive, self.media.block_size)
        return full

    def _ask_for_tape(self, full: str) -> Volume:
        """A drive without changer: eject the full tape and ask the operator for the next one."""
        drive_name = self.media.selection.drive.name
        self.media.drive.offline()
        self.media.close()  # let go of the drive while the operator swaps tapes
        request = (
            f"Tape {full} is full. Insert a blank tape or an appendable tape of pool '{self.pool}' "
            f"into drive {drive_name} to continue job {self.record.job_id}."
        )
        while True:
            if self.ask_for_tape is None or not self.ask_for_tape(request):
                raise TapeFull(f"{request} Nobody could be asked (no terminal), so the job failed.")
            try:
                return self.record.mount(self.media, self.pool)
            except (WrongTape, TapeIOError) as err:
                request = f"That tape cannot be used: {err} Insert another one into drive {drive_name}."
