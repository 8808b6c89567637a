"""``pytp backup --dry-run``: what a backup would store, and on which tape, writing nothing.

The sources are walked with the backup's own walk (``tarwriter.walk``: the
same ``--exclude``, ``--exclude-from`` and ``--one-file-system``) and, for an
incremental or differential, compared with the chain's state in the catalog
the way the backup compares (``levels.reference_for``, ``levels.has_changed``).

The tape is chosen from the changer's status and the catalog alone, in the
order a backup tries them (``pool_choice.pool_candidates``): the drive's tape
if the catalog knows it as appendable to the pool, else the newest appendable
tape of the pool, else the blank cartridge that would be labelled, else an
expired tape that would be recycled.  Neither the drive nor a label is read
or written, no drive lock is taken and no catalog row is added: a backup may
still pick another tape when the one named turns out to disagree with the
catalog at mount time.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from pytp.tapeio.procinfo import host_name
from pytp.tapeio.tarformat import padded
from pytp.tapeio.tarwriter import Problem, walk

from .backup import normalise_sources
from .backup_options import LEVELS, BackupOptions
from .config import Config
from .devices import Selection, open_changer
from .errors import CatalogError
from .levels import Reference, has_changed, reference_for
from .models import Volume, VolumeStatus, path_text, utcnow
from .pool_choice import pool_candidates
from .volumes import pool_accepts, protection, retention_ends_of

#: tar header bytes per member (one 512-byte record; long names need more)
HEADER_BYTES = 512


@dataclass
class SourcePlan:
    """What one source would store."""

    source: str
    level: str
    files: int = 0
    directories: int = 0
    other: int = 0
    bytes: int = 0
    #: the data bytes rounded to tar records, plus a header each: about what goes to tape
    archive_bytes: int = 0
    #: the paths that would be stored (only when asked for)
    paths: list[str] = field(default_factory=list)


@dataclass
class TapeChoice:
    """The tape a backup would start on.

    :param action: ``append`` (a labelled tape), ``label`` (a blank that would
        be labelled), ``recycle`` (an expired tape relabelled), ``drive`` (the
        tape in a drive without changer, not read) or ``none``.
    """

    action: str
    label: str | None = None
    barcode: str | None = None
    slot: int | None = None
    where: str = ""
    message: str = ""
    #: bytes left on the tape, when the catalog knows its capacity
    free: int | None = None


@dataclass
class DryRunReport:
    pool: str
    level: str
    sources: list[SourcePlan]
    tape: TapeChoice
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(s.files + s.directories + s.other for s in self.sources)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.sources)

    @property
    def archive_bytes(self) -> int:
        return sum(s.archive_bytes for s in self.sources)


def dry_run_backup(
    engine: Engine, config: Config, selection: Selection, options: BackupOptions, *, list_paths: bool = False
) -> DryRunReport:
    """What ``run_backup`` with ``options`` would store and where; nothing is written.

    :param engine: the catalog, only read.
    :param config: the effective configuration.
    :param selection: the drive and library the backup would use.
    :param options: the backup's options (sources, level, excludes, pool).
    :param list_paths: collect every path that would be stored (``--verbose``).
    :raises SourceError: a source is missing.
    """
    if options.level not in LEVELS:
        raise CatalogError(f"Unknown level '{options.level}'; use one of {', '.join(LEVELS)}.")
    sources = normalise_sources(options.sources)
    pool = options.pool or config.default_pool
    config.pool(pool)
    host = host_name()
    report = DryRunReport(pool=pool, level=options.level, sources=[], tape=TapeChoice("none"))
    with Session(engine) as session:
        references: dict[bytes, Reference] = {}
        if options.level != "full":
            for source in sources:
                reference = reference_for(session, options.job_name, options.job_label, source, options.level, host)
                if reference is None:
                    report.notes.append(f"{path_text(source)}: no full backup in this chain yet, so it would be full")
                else:
                    references[source] = reference
            if not references:
                report.level = "full"
        try:
            for source in sources:
                report.sources.append(_walk_source(source, references.get(source), options, report, list_paths))
        finally:
            for reference in references.values():
                reference.close()
        report.tape = choose_tape(session, config, selection, pool)
    if report.tape.free is not None and report.archive_bytes > report.tape.free:
        # Only a warning: compression and the real end of medium decide (docs/format.md, spanning).
        report.notes.append(
            f"about {report.archive_bytes} bytes to write and {report.tape.free} free on tape "
            f"{report.tape.label}: the job would continue on another tape of the pool"
        )
    return report


def _free(volume: Volume) -> int | None:
    return max(0, volume.capacity - volume.bytes_written) if volume.capacity else None


def _walk_source(
    source: bytes, reference: Reference | None, options: BackupOptions, report: DryRunReport, list_paths: bool
) -> SourcePlan:
    plan = SourcePlan(path_text(source), "full" if reference is None else report.level)

    def problem(p: Problem) -> None:
        if p.note:
            report.notes.append(f"{path_text(p.path)} {p.message}")
        else:
            report.problems.append((path_text(p.path), p.message))

    for path, st in walk(source, problem, options.exclude):
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            plan.directories += 1  # directories are always stored: their metadata is part of the tree
        elif stat.S_ISSOCK(mode):
            report.notes.append(f"{path_text(path)} is a socket or other special file that tar cannot store; skipped")
            continue
        elif reference is not None and not has_changed(reference.state.get(path), path, st, options.checksum):
            continue
        elif stat.S_ISREG(mode):
            plan.files += 1
            plan.bytes += st.st_size
            plan.archive_bytes += padded(st.st_size)
        else:
            plan.other += 1
        plan.archive_bytes += HEADER_BYTES
        if list_paths:
            plan.paths.append(path_text(path))
    return plan


def choose_tape(session: Session, config: Config, selection: Selection, pool: str) -> TapeChoice:
    """The tape a backup to ``pool`` would start on, from the changer's status and the catalog only."""
    library = selection.library
    if library is None:
        return TapeChoice(
            "drive",
            where=f"drive {selection.drive.name}",
            message=f"the tape in drive {selection.drive.name} (a dry run does not read it)",
        )
    changer = open_changer(library)
    status = changer.status()
    volumes = {
        v.barcode: v for v in session.exec(select(Volume)).all() if v.barcode and (v.library in (None, library.name))
    }
    if selection.element is not None:
        element = status.drive(selection.element)
        if element is not None and element.full:
            volume = volumes.get(element.barcode) if element.barcode else None
            if volume is not None and volume.pool == pool and volume.status == VolumeStatus.APPENDABLE:
                return TapeChoice(
                    "append",
                    volume.label,
                    volume.barcode,
                    where=f"drive {selection.drive.name}",
                    message=f"append to tape {volume.label}, already in drive {selection.drive.name}",
                    free=_free(volume),
                )
    now = utcnow()
    ours = [v for v in volumes.values() if v.pool == pool]
    ends = retention_ends_of(session, config, ours)
    protected = {
        v.id for v in ours if (end := ends[v.id]) is not None and end <= now and protection(session, config, v)
    }
    candidates = pool_candidates(
        status.slots, volumes, pool, lambda barcode: pool_accepts(config, pool, barcode), ends, protected, now
    )
    if not candidates:
        return TapeChoice(
            "none",
            message=f"no appendable, blank or expired tape for pool '{pool}' in library {library.name}: "
            "the backup would fail",
        )
    first = candidates[0]
    slot = status.slot(first.slot)
    barcode = slot.barcode if slot is not None else None
    where = f"slot {first.slot}"
    if first.volume is None:
        text = barcode or "a made-up PYTP-… label"
        return TapeChoice(
            "label",
            barcode or None,
            barcode,
            first.slot,
            where,
            f"label the blank cartridge {barcode or '(no barcode)'} in {where} as {text} for pool '{pool}'",
        )
    volume = first.volume
    action = "recycle" if first.reuse else "append"
    verb = "recycle the expired tape" if first.reuse else "append to tape"
    free = volume.capacity if first.reuse else _free(volume)
    return TapeChoice(
        action, volume.label, volume.barcode, first.slot, where, f"{verb} {volume.label} in {where}", free
    )
