"""Pure parsers for what ``mtx`` prints: ``mtx status`` and its failures.

Nothing here runs a program; ``mtx.MtxChanger`` runs the tool and hands the
text to these functions, which are tested against real transcripts in
``../shared/fixtures/hardware/`` (the split Proxmox Backup Server uses in
``src/tape/changer/mtx/parse_mtx_status.rs``).

The format is fixed by ``Status()`` in mtx.c (mtx 1.3.12)::

      Storage Changer /dev/sg3:2 Drives, 24 Slots ( 1 Import/Export )
    Data Transfer Element 0:Full (Storage Element 8 Loaded):VolumeTag = 042142L9
    Data Transfer Element 1:Empty
          Storage Element 1:Full :VolumeTag=HER006L9
          Storage Element 24 IMPORT/EXPORT:Empty

Drives print ``:VolumeTag = X`` (spaces around ``=``), slots ``:VolumeTag=X``;
either may be followed by ``:AlternateVolumeTag``.  Tags are the 32-byte SCSI
field, so they usually carry trailing spaces.  Libraries without a barcode
reader print no tag at all, and mtx's own diagnostics (``mtx: Request Sense:``
lines, ``Mode sense ... failed``) may be interleaved before the status when
stderr and stdout share a terminal, so unknown lines are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .changer import ChangerStatus, DriveElement, StorageElement
from .errors import ChangerError

_HEADER = re.compile(
    r"Storage Changer\s+(?P<device>.*?):\s*(?P<drives>\d+)\s+Drives?,\s*"
    r"(?P<slots>\d+)\s+Slots?\s*\(\s*(?P<ie>\d+)\s+Import/Export\s*\)",
    re.IGNORECASE,
)
# Very old mtx releases print "Data Transfer Element:Empty" without a number
# when the library has one drive (Amanda's chg-zd-mtx still matches that form).
_DRIVE = re.compile(
    r"^Data Transfer Element(?:\s+(?P<index>\d+))?\s*:\s*(?P<state>Empty|Full)(?P<rest>.*)$",
    re.IGNORECASE,
)
_SLOT = re.compile(
    r"^Storage Element\s+(?P<number>\d+)(?P<ie>\s+IMPORT/EXPORT)?\s*:\s*(?P<state>Empty|Full)(?P<rest>.*)$",
    re.IGNORECASE,
)
_SOURCE = re.compile(r"\(\s*Storage Element\s+(?P<slot>\d+)\s+Loaded\s*\)", re.IGNORECASE)
_UNKNOWN_SOURCE = re.compile(r"\(\s*Unknown Storage Element Loaded\s*\)", re.IGNORECASE)
_TAG = re.compile(r":\s*VolumeTag\s*=\s*(?P<tag>.*?)\s*(?=:\s*AlternateVolumeTag|$)", re.IGNORECASE)
_ALT_TAG = re.compile(r":\s*AlternateVolumeTag\s*=\s*(?P<tag>.*?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MtxHeader:
    """The first line of ``mtx status``.

    :param device: the device path mtx opened, as it prints it.
    :param drives: number of data transfer elements.
    :param slots: number of storage elements, import/export slots included.
    :param import_export: how many of ``slots`` are import/export (mail) slots.
    """

    device: str
    drives: int
    slots: int
    import_export: int


def parse_mtx_header(text: str) -> MtxHeader | None:
    """Find the ``Storage Changer …`` line in ``text``; None when there is none.

    :param text: the output of ``mtx status`` (noise lines are allowed).
    """
    for line in text.splitlines():
        match = _HEADER.search(line)
        if match:
            return MtxHeader(
                device=match["device"].strip(),
                drives=int(match["drives"]),
                slots=int(match["slots"]),
                import_export=int(match["ie"]),
            )
    return None


def _tags(rest: str) -> tuple[str | None, str | None]:
    """The primary and alternate volume tags after the state, blank ones as None."""
    primary = _TAG.search(rest)
    alternate = _ALT_TAG.search(rest)
    return (
        (primary["tag"].strip() or None) if primary else None,
        (alternate["tag"].strip() or None) if alternate else None,
    )


def _parse_drive(match: re.Match[str], default_index: int) -> DriveElement:
    index = int(match["index"]) if match["index"] is not None else default_index
    full = match["state"].lower() == "full"
    rest = match["rest"]
    if not full:
        return DriveElement(index=index, full=False)
    source = _SOURCE.search(rest)
    # "(Unknown Storage Element Loaded)" and no parenthesis at all both mean
    # the library cannot say where the tape came from: source_slot None.
    barcode, alternate = _tags(rest)
    return DriveElement(
        index=index,
        full=True,
        barcode=barcode,
        source_slot=int(source["slot"]) if source else None,
        alternate_barcode=alternate,
    )


def _parse_slot(match: re.Match[str]) -> StorageElement:
    full = match["state"].lower() == "full"
    barcode, alternate = _tags(match["rest"])
    if not full:
        # tgt and some real libraries print a blank tag for empty slots; a tag on
        # an empty element names no tape, so it must not reach the inventory.
        barcode = alternate = None
    return StorageElement(
        number=int(match["number"]),
        full=full,
        barcode=barcode,
        import_export=match["ie"] is not None,
        alternate_barcode=alternate,
    )


def parse_mtx_status(text: str) -> ChangerStatus:
    """Parse the output of ``mtx -f DEV status`` into a :class:`ChangerStatus`.

    Drives keep mtx's numbering (from 0), slots theirs (from 1); import/export
    slots are ordinary slots with ``import_export=True``, as mtx numbers them.

    :param text: stdout of ``mtx status``; interleaved mtx diagnostics are skipped.
    :raises ChangerError: the text holds no status, or fewer/more elements than
        its header announces (a truncated or garbled capture).
    """
    header = parse_mtx_header(text)
    drives: list[DriveElement] = []
    slots: list[StorageElement] = []
    for raw in text.splitlines():
        line = raw.strip()
        drive = _DRIVE.match(line)
        if drive:
            drives.append(_parse_drive(drive, default_index=len(drives)))
            continue
        slot = _SLOT.match(line)
        if slot:
            slots.append(_parse_slot(slot))

    if header is None and not drives and not slots:
        raise ChangerError(
            "mtx printed no changer status. Run 'mtx -f DEVICE status' by hand "
            "and check that DEVICE is the library's changer node (lsscsi -g: type 'mediumx')."
        )
    if header is not None:
        found_ie = sum(1 for s in slots if s.import_export)
        if (len(drives), len(slots), found_ie) != (header.drives, header.slots, header.import_export):
            raise ChangerError(
                f"mtx status is incomplete: its header announces {header.drives} drives, "
                f"{header.slots} slots ({header.import_export} import/export) but lists "
                f"{len(drives)} drives, {len(slots)} slots ({found_ie} import/export). "
                "Run 'mtx status' again; if it repeats, the library may still be scanning its inventory."
            )
    numbers = [s.number for s in slots]
    if len(set(numbers)) != len(numbers):
        raise ChangerError("mtx status lists a storage element twice; run 'mtx status' again.")
    return ChangerStatus(drives=drives, slots=slots)


# --- failures -------------------------------------------------------------------

#: Stable names for the kinds of mtx failure, for callers and tests.
NO_DEVICE = "no-device"
PERMISSION_DENIED = "permission-denied"
NOT_A_CHANGER = "not-a-changer-device"
SOURCE_EMPTY = "source-empty"
DESTINATION_FULL = "destination-full"
DRIVE_EMPTY = "drive-empty"
DRIVE_FULL = "drive-full"
UNKNOWN_SOURCE = "unknown-source-slot"
INVALID_ELEMENT = "invalid-element"
REMOVAL_PREVENTED = "removal-prevented"
ILLEGAL_REQUEST = "illegal-request"
NOT_READY = "not-ready"
ELEMENT_STATUS_FAILED = "element-status-failed"
INQUIRY_FAILED = "inquiry-failed"
MOVE_FAILED = "move-failed"
UNKNOWN = "unknown"

# Additional sense codes a media changer reports (SPC/SMC tables).  Only the
# ones that change what the administrator should do are named.
_ASC_TEXT: dict[tuple[int, int | None], str] = {
    (0x04, 0x00): "logical unit not ready, cause not reportable",
    (0x04, 0x01): "logical unit is becoming ready",
    (0x04, 0x03): "manual intervention required",
    (0x04, 0x12): "logical unit not ready, offline",
    (0x04, None): "logical unit not ready",
    (0x21, 0x01): "invalid element address",
    (0x24, 0x00): "invalid field in CDB",
    (0x28, 0x00): "medium may have changed (door opened or inventory changed)",
    (0x29, None): "power on or reset occurred",
    (0x30, None): "incompatible medium installed",
    (0x3A, None): "medium not present",
    (0x3B, 0x0D): "medium destination element full",
    (0x3B, 0x0E): "medium source element empty",
    (0x3B, 0x11): "medium magazine not accessible",
    (0x3B, 0x12): "medium magazine removed",
    (0x53, 0x02): "medium removal prevented",
}


@dataclass(frozen=True)
class SenseData:
    """One ``mtx: Request Sense:`` block.

    :param sense_key: the sense key as mtx names it ("Not Ready", "Illegal Request").
    :param asc: additional sense code, None when mtx did not print it.
    :param ascq: additional sense code qualifier.
    """

    sense_key: str
    asc: int | None = None
    ascq: int | None = None

    def describe(self) -> str:
        """``"Not Ready, logical unit not ready, offline (ASC 04h/ASCQ 12h)"``."""
        text = _ASC_TEXT.get((self.asc, self.ascq)) if self.asc is not None else None
        if text is None and self.asc is not None:
            text = _ASC_TEXT.get((self.asc, None))
        parts = [self.sense_key]
        if text:
            parts.append(text)
        described = ", ".join(parts)
        if self.asc is not None:
            described += f" (ASC {self.asc:02X}h/ASCQ {(self.ascq or 0):02X}h)"
        return described


_SENSE_KEY = re.compile(r"Request Sense:\s*Sense Key\s*=\s*(?P<key>.+?)\s*$", re.IGNORECASE)
_SENSE_ASC = re.compile(r"Request Sense:\s*Additional Sense Code\s*=\s*(?P<v>[0-9A-Fa-f]{1,2})\b")
_SENSE_ASCQ = re.compile(r"Request Sense:\s*Additional Sense Qualifier\s*=\s*(?P<v>[0-9A-Fa-f]{1,2})\b")


def parse_request_sense(text: str) -> list[SenseData]:
    """Every ``Request Sense`` block mtx printed, in order.

    :param text: mtx's combined output.
    """
    blocks: list[SenseData] = []
    key: str | None = None
    asc: int | None = None
    ascq: int | None = None

    def flush() -> None:
        if key is not None:
            blocks.append(SenseData(key, asc, ascq))

    for line in text.splitlines():
        if "Request Sense: Long Report" in line:
            # Each block starts with this line; it closes the previous one.
            flush()
            key, asc, ascq = None, None, None
            continue
        if m := _SENSE_KEY.search(line):
            key = m["key"]
        elif m := _SENSE_ASC.search(line):
            asc = int(m["v"], 16)
        elif m := _SENSE_ASCQ.search(line):
            ascq = int(m["v"], 16)
    flush()
    return blocks


@dataclass(frozen=True)
class MtxFailure:
    """What went wrong, for a person.

    :param kind: one of the constants above (``SOURCE_EMPTY``, ...).
    :param message: what happened and what to do next.
    :param detail: the mtx line the classification rests on, if any.
    """

    kind: str
    message: str
    detail: str | None = None


def _line(text: str, pattern: str) -> re.Match[str] | None:
    return re.search(pattern, text, re.IGNORECASE | re.MULTILINE)


#: (kind, a line of mtx output, what to tell the user) for failures one line identifies
_LINE_RULES: list[tuple[str, str, str]] = [
    (
        NOT_A_CHANGER,
        r"^.*is not an sg device, or old sg driver.*$",
        "The configured changer device is not a SCSI generic device. Use the library's "
        "/dev/sgN (or /dev/schN) node, not a tape drive node (lsscsi -g shows both).",
    ),
    (
        SOURCE_EMPTY,
        r"^.*Source Element Address \d+ is Empty.*$",
        "There is no tape in the source element. Check the inventory ('pytp list' "
        "or 'mtx status') and move a tape from a full slot.",
    ),
    (
        DESTINATION_FULL,
        r"^.*(Destination Element Address \d+|Storage Element \d+) is Already Full.*$",
        "The destination already holds a tape. Choose an empty slot (see 'mtx status').",
    ),
    (
        DRIVE_EMPTY,
        r"^.*Data Transfer Element \d+ is Empty.*$",
        "The drive holds no tape, so there is nothing to unload.",
    ),
    (
        DRIVE_FULL,
        r"^.*Drive \d+ Full \(Storage Element \d+ loaded\).*$",
        "The drive already holds a tape. Unload it first ('pytp unload').",
    ),
    (
        UNKNOWN_SOURCE,
        r"^.*Do not know which slot to unload tape into.*$",
        "The library does not know which slot the loaded tape came from. Name an empty slot to unload into.",
    ),
    (
        INVALID_ELEMENT,
        r"^.*(Invalid source|Invalid destination|illegal <drive-number>|"
        r"Invalid <storage-element-number>|illegal <storage-element-number>).*$",
        "The slot or drive number does not exist in this library. "
        "'mtx status' lists the valid numbers (slots from 1, drives from 0).",
    ),
]


#: (ASC, ASCQ) of the library's sense data → (kind, what to tell the user)
_SENSE_RULES: dict[tuple[int, int], tuple[str, str]] = {
    (0x3B, 0x0E): (SOURCE_EMPTY, "There is no tape in the source element. Check the inventory with 'mtx status'."),
    (0x3B, 0x0D): (DESTINATION_FULL, "The destination already holds a tape. Choose an empty slot."),
    (0x21, 0x01): (
        INVALID_ELEMENT,
        "The library rejected an element address that does not exist. 'mtx status' lists the valid numbers.",
    ),
    (0x53, 0x02): (
        REMOVAL_PREVENTED,
        "The drive still holds the tape (medium removal prevented). "
        "Eject it first ('mt -f /dev/nstN offline'), then unload.",
    ),
}


def classify_mtx_error(output: str, returncode: int | None) -> MtxFailure:
    """Turn a failed mtx run into a kind and a message that says what to do.

    :param output: stderr and stdout of mtx (either order; both are searched).
    :param returncode: mtx's exit status (None if it was killed by a timeout).
    """
    sense = parse_request_sense(output)
    last_sense = sense[-1] if sense else None

    if m := _line(output, r"^.*cannot open SCSI device '(?P<dev>[^']*)' - (?P<why>.*)$"):
        why = m["why"].strip()
        if "No such file" in why or "No such device" in why:
            return MtxFailure(
                NO_DEVICE,
                f"The changer device {m['dev']} does not exist. Check the library's device "
                "in the configuration (lsscsi -g lists changers as 'mediumx'; use its /dev/sgN "
                "or /dev/schN node).",
                m.group(0).strip(),
            )
        if "Permission denied" in why or "Operation not permitted" in why:
            return MtxFailure(
                PERMISSION_DENIED,
                f"No permission to open the changer device {m['dev']}. Run as root or give "
                "your user access to the device (on Debian: add it to the 'tape' group).",
                m.group(0).strip(),
            )
        return MtxFailure(
            NO_DEVICE, f"mtx cannot open the changer device {m['dev']}: {why}.", m.group(0).strip()
        )
    for kind, pattern, message in _LINE_RULES:
        if m := _line(output, pattern):
            return MtxFailure(kind, message, m.group(0).strip())
    if m := _line(output, r"^.*READ ELEMENT STATUS Command Failed.*$"):
        why = f" The library says: {last_sense.describe()}." if last_sense else ""
        return MtxFailure(
            ELEMENT_STATUS_FAILED,
            "The library did not report its inventory (READ ELEMENT STATUS failed)." + why +
            " Check that it is online and in random (library) mode, not sequential or "
            "autoloader mode, and that it has finished its inventory scan; then retry.",
            m.group(0).strip(),
        )
    if m := _line(output, r"^.*INQUIRY Command Failed.*$"):
        return MtxFailure(
            INQUIRY_FAILED,
            "The device did not answer INQUIRY. Check the cabling and that the device is a media changer.",
            m.group(0).strip(),
        )
    if last_sense is not None and (rule := _SENSE_RULES.get((last_sense.asc, last_sense.ascq))):
        return MtxFailure(rule[0], rule[1], last_sense.describe())
    move = _line(output, r"^.*(MOVE MEDIUM|EXCHANGE MEDIUM) from Element Address \d+ to \d+ Failed.*$")
    if last_sense is not None and last_sense.sense_key.lower() == "illegal request":
        return MtxFailure(
            ILLEGAL_REQUEST,
            f"The library refused the command: {last_sense.describe()}. Check the slot and "
            "drive numbers against 'mtx status'.",
            move.group(0).strip() if move else last_sense.describe(),
        )
    if last_sense is not None and last_sense.sense_key.lower() == "not ready":
        return MtxFailure(
            NOT_READY,
            f"The library is not ready: {last_sense.describe()}. Wait until it is online "
            "(door closed, inventory finished), then retry.",
            move.group(0).strip() if move else last_sense.describe(),
        )
    if move:
        why = f" The library says: {last_sense.describe()}." if last_sense else ""
        return MtxFailure(
            MOVE_FAILED,
            "The library could not move the tape." + why + " Check the library's display or log.",
            move.group(0).strip(),
        )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else None
    status = "was stopped" if returncode is None else f"exited with status {returncode}"
    said = f": {last}" if last else " without a message"
    return MtxFailure(UNKNOWN, f"mtx {status}{said}. Run the same mtx command by hand to see more.", last)
