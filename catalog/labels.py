"""The label job: write a volume label onto a tape, safely.

A blank tape is labelled at once.  A tape that holds pytp data still in
retention or the newest catalog snapshot, data of another catalog, or foreign
data is refused; ``force``
overrides that only with the new label typed again (``confirm``), because
relabelling makes everything on the tape unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from pytp.tapeio.changer import DriveElement
from pytp.tapeio.drive import ensure_block_size
from pytp.tapeio.errors import ForeignTape
from pytp.tapeio.volume_label import VolumeLabel

from .config import Config
from .devices import Selection
from .errors import ConfigError, WrongTape
from .media import Media, made_up_label, open_media
from .models import Volume
from .volumes import pool_accepts, protection


@dataclass(frozen=True)
class LabelResult:
    label: str
    barcode: str | None
    pool: str
    relabelled: bool


def _load(media: Media, slot: int | None, barcode: str | None) -> None:
    """Bring the tape from ``slot`` or with ``barcode`` into the drive."""
    if slot is None and barcode is None:
        if not media.has_tape_in_drive():
            raise WrongTape(f"No tape in drive {media.selection.drive.name}. Load one, or give --slot or --barcode.")
        return
    if media.changer is None or media.selection.element is None:
        raise ConfigError(f"Drive {media.selection.drive.name} is not in a library: --slot/--barcode need one.")
    status = media.changer.status()
    if barcode is not None:
        place = status.find_barcode(barcode)
        if place is None:
            raise WrongTape(f"No cartridge with barcode {barcode} in library {media.changer.name}.")
        if isinstance(place, DriveElement):
            if place.index == media.selection.element:
                return
            raise WrongTape(f"Cartridge {barcode} is in another drive (element {place.index}); unload it first.")
        slot = place.number
    assert slot is not None
    media.load(slot)


def label_tape(
    engine: Engine,
    config: Config,
    selection: Selection,
    *,
    text: str | None = None,
    slot: int | None = None,
    barcode: str | None = None,
    pool: str | None = None,
    force: bool = False,
    confirm: str | None = None,
) -> LabelResult:
    """Label the tape in the drive, or the one in ``slot`` / with ``barcode``.

    :param text: the label (default: the barcode, else the current label).
    :param pool: the pool (default: the tape's current pool, else the default pool).
    :param force: overwrite data in retention, another catalog's or foreign data.
    :param confirm: the label typed again; required with ``force``.
    :raises WrongTape: the tape holds data that must not be overwritten.
    """
    with (
        open_media(config, selection) as media,
        Session(engine, expire_on_commit=False) as session,
    ):
        _load(media, slot, barcode)
        ensure_block_size(media.drive, media.block_size)
        current_barcode = media.current_barcode()
        foreign = False
        label: VolumeLabel | None = None
        try:
            label = media.read_label()
        except ForeignTape:
            foreign = True
        volume = session.exec(select(Volume).where(Volume.uuid == label.uuid)).first() if label else None
        name = text or current_barcode or (label.label if label else None) or made_up_label()
        target_pool = pool or (volume.pool if volume else None) or config.default_pool
        config.pool(target_pool)
        problem = _why_not(session, config, label, volume, foreign)
        _check_barcode_collision(session, media, current_barcode, volume)
        if problem and not force:
            raise WrongTape(f"{problem} Not relabelled. To overwrite it anyway, use --force and type the label again.")
        if problem and confirm != name:
            raise WrongTape(f"{problem} --force needs the new label '{name}' typed again (--confirm {name}).")
        if label is None and not foreign and not pool_accepts(config, target_pool, current_barcode) and not force:
            raise WrongTape(f"Barcode {current_barcode} is reserved for another pool by its label prefix.")
        volume = media.write_label(session, text=name, pool=target_pool, barcode=current_barcode, reuse=volume)
        return LabelResult(volume.label, volume.barcode, volume.pool, relabelled=label is not None or foreign)


def _check_barcode_collision(session: Session, media: Media, barcode: str | None, volume: Volume | None) -> None:
    """Refuse a barcode the catalog knows from another library: two cartridges with one barcode (issue 9).

    :raises WrongTape: another library's tape already has ``barcode``.
    """
    if not barcode:
        return
    here = media.selection.library.name if media.selection.library else None
    for other in session.exec(select(Volume).where(Volume.barcode == barcode)).all():
        if (volume is None or other.id != volume.id) and other.library not in (None, here):
            raise WrongTape(
                f"Barcode {barcode} is already tape '{other.label}' of library {other.library} in the catalog. "
                "Barcodes must be unique across libraries sharing a catalog: give this library another "
                "barcode prefix (or move the cartridge with `pytp library move-cartridge`)."
            )


def _why_not(
    session: Session, config: Config, label: VolumeLabel | None, volume: Volume | None, foreign: bool
) -> str | None:
    """Why relabelling this tape needs --force, or None when it may be labelled."""
    if foreign:
        return "The tape holds data that pytp did not write."
    if label is None:
        return None
    if volume is None:
        return f"The tape is labelled '{label.label}' by pytp but is not in this catalog (another site's tape?)."
    return protection(session, config, volume)


def label_barcodes(engine: Engine, config: Config, selection: Selection, pool: str | None = None) -> list[str]:
    """Label every blank cartridge in the library whose barcode the catalog does not know.

    :returns: one line per cartridge looked at: labelled, or skipped and why.
    """
    target_pool = pool or config.default_pool
    if selection.library is None:
        raise ConfigError(f"Drive {selection.drive.name} is not in a library: --barcodes needs one.")
    with Session(engine) as session:
        # This library's tapes (and those from before libraries were recorded); another
        # library's cartridge with the same barcode is reported when its label is tried.
        ours = (Volume.library == selection.library.name) | (col(Volume.library).is_(None))
        known = {v.barcode for v in session.exec(select(Volume).where(ours)).all() if v.barcode}
    from .devices import open_changer

    status = open_changer(selection.library).status()
    report = []
    for element in status.slots:
        if not element.full or element.import_export or not element.barcode or element.barcode in known:
            continue
        if element.is_cleaning:
            report.append(f"{element.barcode}: cleaning cartridge, skipped")
            continue
        if not pool_accepts(config, target_pool, element.barcode):
            report.append(f"{element.barcode}: reserved for another pool, skipped")
            continue
        try:
            result = label_tape(engine, config, selection, barcode=element.barcode, pool=target_pool)
        except WrongTape as err:
            report.append(f"{element.barcode}: skipped, {err}")
        else:
            report.append(f"{element.barcode}: labelled {result.label} in pool {result.pool}")
    return report
