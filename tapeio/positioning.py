"""Moving the head to a tape file, by filemark spacing only.

tgt's emulated drives (and some real ones) answer neither READ POSITION nor
LOCATE, so pytp positions with ``fsf``/``bsfm``/``rewind`` from the file
number the driver reports, and with ``fsr`` inside a file.
"""

from __future__ import annotations

from .drive import UNKNOWN, Drive


def goto_file(drive: Drive, file_number: int) -> None:
    """Put the head at block 0 of tape file ``file_number``."""
    status = drive.status()
    current = status.file_number
    if current == file_number and status.block_number == 0:
        return
    if file_number == 0 or current == UNKNOWN or status.block_number == UNKNOWN and current <= file_number:
        drive.rewind()
        if file_number:
            drive.fsf(file_number)
    elif current < file_number:
        drive.fsf(file_number - current)
    else:
        # Back over the filemark that ends file `file_number - 1`, landing at
        # the start of `file_number` (MTBSFM: bsf n, then fsf 1).
        drive.bsfm(current - file_number + 1)
