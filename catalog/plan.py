"""Restore plans: which tapes, in which order, which tape files and blocks.

A plan loads each tape once: the tape already in the drive first, then the
others, ordered so that the parts of a member cut across tapes come in order
(part 1's tape before part 2's).  Inside a tape, files are visited in tape
order and members in offset order; members closer than a few blocks are read
in one pass, farther ones are reached by spacing (``fsr``).  The estimate
uses the ``restore_planning`` settings (drive speed, load and seek times).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytp.tapeio.blockio import TapeFileReader

from .config import PlanningConfig
from .models import Entry, EntryPart, TapeFile, Volume, row_id


@dataclass
class Item:
    """One thing to read in a tape file: a whole member, or one part of a cut one."""

    entry: Entry
    offset: int
    length: int
    part: EntryPart | None = None


@dataclass
class FilePlan:
    tape_file: TapeFile
    items: list[Item] = field(default_factory=list)
    #: block ranges (first, last) actually read, after merging near neighbours
    reads: list[tuple[int, int]] = field(default_factory=list)

    @property
    def blocks(self) -> int:
        return sum(last - first + 1 for first, last in self.reads)


@dataclass
class TapePlan:
    volume: Volume
    location: str
    files: list[FilePlan] = field(default_factory=list)


@dataclass
class RestorePlan:
    tapes: list[TapePlan]
    missing: list[Volume]
    block_size: int
    members: int
    planning: PlanningConfig
    #: copy tapes read instead of their original (``copy_read``): copy volume id -> original's label
    copy_of: dict[int, str] = field(default_factory=dict)
    #: where to fetch originals (and their copies) that no library holds
    fetch: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> int:
        return sum(f.blocks for t in self.tapes for f in t.files)

    @property
    def bytes_to_read(self) -> int:
        return self.blocks * self.block_size

    @property
    def seeks(self) -> int:
        return sum(len(f.reads) for t in self.tapes for f in t.files)

    @property
    def loads(self) -> int:
        return sum(1 for t in self.tapes if not t.location.startswith("drive"))

    @property
    def seconds(self) -> float:
        p = self.planning
        return self.bytes_to_read / (p.drive_mb_per_s * 1e6) + self.loads * p.load_seconds + self.seeks * p.seek_seconds

    def describe(self) -> list[str]:
        """The plan as lines for a person."""
        lines = [
            f"{self.members} member(s) from {len(self.tapes)} tape(s): {self.loads} load(s), {self.seeks} seek(s), "
            f"{self.bytes_to_read / 1e6:.1f} MB to read, about {self.seconds / 60:.1f} min."
        ]
        for number, tape in enumerate(self.tapes, start=1):
            original = self.copy_of.get(row_id(tape.volume))
            copy = f", copy of {original}, which is not in the library" if original else ""
            lines.append(
                f"{number}. tape {tape.volume.label} (barcode {tape.volume.barcode or '-'}, {tape.location}{copy})"
            )
            for fp in tape.files:
                ranges = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in fp.reads)
                number_ = fp.tape_file.file_number
                lines.append(f"   file {number_}: {len(fp.items)} member(s), blocks {ranges} ({fp.blocks} blocks)")
        for volume in self.missing:
            lines.append(f"missing: insert tape {volume.label} (barcode {volume.barcode or '-'}) into the library")
        lines += [f"missing: {line}" for line in self.fetch]
        return lines


def extend_ranges(ranges: list[tuple[int, int]], offset: int, length: int, block_size: int) -> None:
    """Add the blocks of a member at ``offset`` to ``ranges`` (members come in offset order)."""
    first = offset // block_size
    last = (offset + max(length, 1) - 1) // block_size
    if ranges and first - ranges[-1][1] - 1 < TapeFileReader.SPACE_THRESHOLD_BLOCKS:
        # Close enough: reading through the gap is cheaper than stopping to space.
        ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
    else:
        ranges.append((first, last))


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Block ranges in order, neighbours closer than spacing is worth joined (:func:`extend_ranges`'s rule)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first - merged[-1][1] - 1 < TapeFileReader.SPACE_THRESHOLD_BLOCKS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def tape_order(volumes: dict[int, Volume], edges: set[tuple[int, int]], first: int | None) -> list[int]:
    """Volume ids in an order that respects ``edges`` (a before b); ``first`` leads if it can."""
    remaining = set(volumes)
    incoming = {v: {a for a, b in edges if b == v} for v in remaining}
    order: list[int] = []
    while remaining:
        ready = sorted((v for v in remaining if not (incoming[v] & remaining)), key=lambda v: volumes[v].label)
        if not ready:  # a cycle between jobs' tape sequences: parts are spooled
            ready = sorted(remaining, key=lambda v: volumes[v].label)
        pick = first if first in ready else ready[0]
        order.append(pick)  # type: ignore[arg-type]
        remaining.discard(pick)  # type: ignore[arg-type]
        first = None
    return order
