"""The volume label: tape file 0, a tar archive holding ``PYTP-LABEL.json``.

A tape without it is blank (no data at all) or foreign (data, but not
pytp's); pytp writes only to blank tapes and to tapes it labelled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .drive import Drive
from .errors import BlankTape, ForeignTape, TarFormatError
from .smallarchive import read_small_archive, write_small_archive

LABEL_MEMBER = "PYTP-LABEL.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class VolumeLabel:
    label: str
    uuid: str
    pool: str
    block_size: int
    created: str
    barcode: str | None = None
    format_version: int = FORMAT_VERSION
    #: on a copy tape (``pytp copy``): the uuid and label of the tape it mirrors.
    #: Optional keys: labels without them read as before, and a reader that
    #: does not know them ignores them (``from_json`` takes known keys only).
    copy_of_uuid: str | None = None
    copy_of_label: str | None = None

    def to_json(self) -> bytes:
        fields = asdict(self)
        for key in ("copy_of_uuid", "copy_of_label"):
            if fields[key] is None:
                del fields[key]  # an ordinary tape's label stays as it always was
        return (json.dumps({"pytp_volume_label": fields}, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, payload: bytes) -> VolumeLabel:
        data = json.loads(payload)["pytp_volume_label"]
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def write_label(drive: Drive, block_size: int, label: VolumeLabel) -> None:
    """Rewind and write ``label`` as tape file 0 (everything after it is lost)."""
    drive.rewind()
    write_small_archive(drive, block_size, LABEL_MEMBER, label.to_json())


def read_label(drive: Drive, block_size: int) -> VolumeLabel | None:
    """Rewind and read the label; None for a blank tape.

    Leaves the drive inside tape file 0; callers position from there.

    :raises ForeignTape: the tape holds data that is not a pytp label.
    """
    drive.rewind()
    try:
        first = drive.read(block_size)
    except BlankTape:
        return None
    if not first:
        if drive.status().file_number > 0:
            raise ForeignTape("The tape starts with an empty file, not a pytp volume label. Use another tape.")
        return None  # end of data right at the beginning: a blank tape
    try:
        name, payload = read_small_archive(drive, block_size, max_size=1 << 20, first_block=first)
    except TarFormatError as err:
        raise ForeignTape(f"The tape holds data that is not a pytp volume ({err}). Use another tape.") from err
    if name != LABEL_MEMBER:
        raise ForeignTape(f"The tape's first file holds '{name}', not a pytp volume label. Use another tape.")
    try:
        return VolumeLabel.from_json(payload)
    except (ValueError, KeyError, TypeError) as err:
        raise ForeignTape(f"The tape's volume label is damaged ({err}).") from err
