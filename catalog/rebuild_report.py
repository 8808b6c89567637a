"""What a catalog rebuild read, added and found wrong: the report ``pytp catalog rebuild`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from pytp.tapeio.volume_label import VolumeLabel

from .manifest import ReadManifest
from .rebuild_import import ImportCounts
from .record_spool import RecordSpool


@dataclass(frozen=True)
class RebuildProblem:
    """Something a rebuild could not read or would not trust, and where."""

    tape: str
    file: int | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.tape
        if self.file is not None:
            where += f" file {self.file}"
        if self.line is not None:
            where += f" line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class RebuildReport(ImportCounts):
    """What a rebuild read, added and found wrong (``pytp catalog rebuild`` prints it)."""

    tapes: list[str] = field(default_factory=list)
    data_files_skipped: int = 0
    snapshots: int = 0
    empty_files: int = 0
    #: damaged, skipped or distrusted items; any makes ``pytp catalog rebuild`` exit non-zero
    problems: list[RebuildProblem] = field(default_factory=list)
    #: manifests with lines on tapes not read yet: (volume id, label, file, blocks, manifest)
    pending: list[tuple[int, str, int, int, ReadManifest]] = field(default_factory=list)
    #: the kind of each tape file after the label, for every tape read
    kinds: dict[str, list[str]] = field(default_factory=dict)
    #: data files at the end of a tape no manifest has claimed yet: its
    #: manifest may be on a tape read later (a job that spanned tapes)
    unclaimed: list[Unclaimed] = field(default_factory=list)
    #: spools of the tapes whose manifests ``pending`` holds, closed at the end
    spools: list[RecordSpool] = field(default_factory=list)
    #: copy tapes whose source the catalog did not hold when they were read: (barcode, name, label)
    orphan_copies: list[tuple[str | None, str, VolumeLabel]] = field(default_factory=list)


@dataclass(frozen=True)
class Unclaimed:
    volume_id: int
    name: str
    barcode: str | None
    files: list[int]
