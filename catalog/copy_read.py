"""Which tape a restore reads: the original, or a copy of it that is in the library (issue 11, part 1).

A copy tape (``pytp copy``) holds its source's tape files at the same numbers
and offsets, so a restore can read any member from it with the catalog's
positions unchanged: only the volume and tape-file row change.  A source tape
that is not in the library (exported to a vault, or simply not found by the
changer) is replaced by a copy that is, if that copy holds every tape file
the restore needs complete.  When no copy is in the library either, the plan
says what to fetch and from where.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from .config import Config
from .inventory import locate_barcodes
from .models import TapeFile, TapeFileStatus, Volume, row_id
from .parts import Piece
from .search import Found


@dataclass
class CopyChoice:
    """What ``use_copies`` decided.

    :param copy_of: by copy volume id, the label of the original it stands in for.
    :param fetch: for each original neither it nor a copy of which is in the
        library: a line saying where it and its copies are.
    """

    copy_of: dict[int, str] = field(default_factory=dict)
    fetch: list[str] = field(default_factory=list)


def _presence(
    available: Mapping[str, object], loaded_barcode: str | None, with_library: bool
) -> Callable[[Volume], bool]:
    """Whether a tape can be read now: not in a vault, and (with a library) found by a changer or in the drive."""

    def here(volume: Volume) -> bool:
        if volume.vault is not None:
            return False
        if not with_library:
            return True
        return bool(volume.barcode) and (volume.barcode in available or volume.barcode == loaded_barcode)

    return here


def _where(volume: Volume) -> str:
    return f"vault '{volume.vault}'" if volume.vault else "outside the library"


def use_copies(
    session: Session,
    entries: list[Found],
    parts: dict[int, list[Piece]],
    available: Mapping[str, object],
    loaded_barcode: str | None,
    with_library: bool,
) -> tuple[list[Found], dict[int, list[Piece]], CopyChoice]:
    """Replace each original that is away by a copy that is here.

    :param available: barcodes the libraries hold (``inventory.locate_barcodes``).
    :param loaded_barcode: the tape in the drive the restore uses.
    :param with_library: whether a library is configured; without one only a
        tape recorded in a vault counts as away.
    :returns: the entries and parts to plan with, and what was chosen.
    """
    choice = CopyChoice()
    here = _presence(available, loaded_barcode, with_library)

    needed: dict[int, tuple[Volume, set[int]]] = {}  # original volume id -> (volume, source tape file ids)
    for found in entries:
        if not parts.get(row_id(found.entry)):
            needed.setdefault(row_id(found.volume), (found.volume, set()))[1].add(row_id(found.tape_file))
    for pieces in parts.values():
        for _, tape_file, volume in pieces:
            needed.setdefault(row_id(volume), (volume, set()))[1].add(row_id(tape_file))

    swaps: dict[int, tuple[Volume, dict[int, TapeFile]]] = {}
    for volume_id, (volume, tape_file_ids) in needed.items():
        if here(volume):
            continue
        copies = _complete_copies(session, volume_id, tape_file_ids)
        present = [(copy, rows) for copy, rows in copies if here(copy)]
        if present:
            # The copy already in the drive first: no load at all.
            present.sort(key=lambda cr: (cr[0].barcode != loaded_barcode, cr[0].label))
            copy, rows = present[0]
            swaps[volume_id] = (copy, rows)
            choice.copy_of[row_id(copy)] = volume.label
            continue
        if copies or volume.vault:
            places = [f"{volume.label} (original, barcode {volume.barcode or '-'}) is in {_where(volume)}"]
            places += [f"copy {copy.label} (barcode {copy.barcode or '-'}) is in {_where(copy)}" for copy, _ in copies]
            choice.fetch.append(f"fetch one of: {'; '.join(places)}")
    if not swaps:
        return entries, parts, choice

    def swap(volume: Volume, tape_file: TapeFile) -> tuple[TapeFile, Volume]:
        replaced = swaps.get(row_id(volume))
        if replaced is None:
            return tape_file, volume
        copy, rows = replaced
        return rows[row_id(tape_file)], copy

    new_entries = []
    for found in entries:
        tape_file, volume = swap(found.volume, found.tape_file)
        new_entries.append(dataclasses.replace(found, tape_file=tape_file, volume=volume))
    new_parts = {
        entry_id: [(part, *swap(volume, tape_file)) for part, tape_file, volume in pieces]
        for entry_id, pieces in parts.items()
    }
    return new_entries, new_parts, choice  # type: ignore[return-value]


def _complete_copies(
    session: Session, original_id: int, tape_file_ids: set[int]
) -> list[tuple[Volume, dict[int, TapeFile]]]:
    """The copies of ``original_id`` holding every tape file in ``tape_file_ids`` complete, each with its rows.

    :returns: (copy volume, {source tape file id: copy's tape file row}).
    """
    result = []
    copies = session.exec(select(Volume).where(Volume.copy_of_id == original_id).order_by(col(Volume.label))).all()
    for copy in copies:
        rows = session.exec(
            select(TapeFile).where(
                TapeFile.volume_id == copy.id,
                TapeFile.status == TapeFileStatus.COMPLETE,
                col(TapeFile.copy_of_id).in_(list(tape_file_ids)),
            )
        ).all()
        by_source = {row.copy_of_id: row for row in rows if row.copy_of_id is not None}
        if set(by_source) >= tape_file_ids:
            result.append((copy, by_source))
    return result


def copies_to_read(
    session: Session,
    config: Config,
    needed: Mapping[int, tuple[Volume, set[int]]],
    loaded_barcode: str | None,
) -> dict[int, Volume]:
    """For each original that is away, a copy in the library holding the tape files needed.

    For callers that address tape files by number and keep the source's rows
    (verify): the entries stay on the source's rows, only the tape mounted changes.

    :param needed: original volume id -> (volume, ids of its tape files to read).
    :returns: original volume id -> the copy volume to mount instead.
    """
    here = _presence(locate_barcodes(config), loaded_barcode, bool(config.libraries))

    chosen: dict[int, Volume] = {}
    for volume_id, (volume, tape_file_ids) in needed.items():
        if here(volume):
            continue
        present = [copy for copy, _ in _complete_copies(session, volume_id, tape_file_ids) if here(copy)]
        if present:
            present.sort(key=lambda c: (c.barcode != loaded_barcode, c.label))
            chosen[volume_id] = present[0]
    return chosen
