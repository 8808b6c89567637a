"""Drive health: TapeAlert flags (log page 0x2E) and the error counters (0x02/0x03, 0x0C).

A :class:`DriveHealth` is what a drive says about itself at one moment: the
TapeAlert flags that are set, each with its number, name and severity from
the SSC/T10 TapeAlert table, and the write/read error counters.  It is plain
data (no device access): ``StDrive.health()`` fills it from ``sg_logs``, the
virtual drive from its fault configuration.

Severities are the table's: ``critical`` (C: stop and act, data may be at
risk), ``warning`` (W: act soon), ``info`` (I).  Flags 20 (clean now) and 21
(clean periodic) mean the drive wants a cleaning cartridge.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"

#: Flags that ask for a cleaning cartridge: 20 "Clean now", 21 "Clean periodic".
CLEANING_FLAGS = (20, 21)


@dataclass(frozen=True)
class TapeAlertFlag:
    """One row of the TapeAlert table.

    :param number: the flag (1-64), also the log parameter code.
    :param name: the T10 name ("Clean now").
    :param severity: ``critical``, ``warning`` or ``info``.
    :param sg_name: how ``sg_logs`` (sg3_utils) prints it ("Cleaning required").
    """

    number: int
    name: str
    severity: str
    sg_name: str


_C, _W, _I = CRITICAL, WARNING, INFO
_ROWS: tuple[tuple[int, str, str, str], ...] = (
    (1, "Read warning", _W, "Read warning"),
    (2, "Write warning", _W, "Write warning"),
    (3, "Hard error", _W, "Hard error"),
    (4, "Media", _C, "Media"),
    (5, "Read failure", _C, "Read failure"),
    (6, "Write failure", _C, "Write failure"),
    (7, "Media life", _W, "Media life"),
    (8, "Not data grade", _W, "Not data grade"),
    (9, "Write protect", _C, "Write protect"),
    (10, "No removal", _I, "No removal"),
    (11, "Cleaning media", _I, "Cleaning media"),
    (12, "Unsupported format", _I, "Unsupported format"),
    (13, "Recoverable mechanical cartridge failure", _C, "Recoverable mechanical cartridge failure"),
    (14, "Unrecoverable mechanical cartridge failure", _C, "Unrecoverable mechanical cartridge failure"),
    (15, "Memory chip in cartridge failure", _W, "Memory chip in cartridge failure"),
    (16, "Forced eject", _C, "Forced eject"),
    (17, "Read only format", _W, "Read only format"),
    (18, "Tape directory corrupted on load", _W, "Tape directory corrupted on load"),
    (19, "Nearing media life", _I, "Nearing media life"),
    (20, "Clean now", _C, "Cleaning required"),
    (21, "Clean periodic", _W, "Cleaning requested"),
    (22, "Expired cleaning media", _C, "Expired cleaning media"),
    (23, "Invalid cleaning tape", _C, "Invalid cleaning tape"),
    (24, "Retension requested", _W, "Retension requested"),
    (25, "Dual-port interface error", _W, "Dual port interface error"),
    (26, "Cooling fan failure", _W, "Cooling fan failing"),
    (27, "Power supply failure", _W, "Power supply failure"),
    (28, "Power consumption", _W, "Power consumption"),
    (29, "Drive maintenance", _W, "Drive maintenance"),
    (30, "Hardware A", _C, "Hardware A"),
    (31, "Hardware B", _C, "Hardware B"),
    (32, "Interface", _W, "Interface"),
    (33, "Eject media", _C, "Eject media"),
    (34, "Microcode update fail", _W, "Microcode update fail"),
    (35, "Drive humidity", _W, "Drive humidity"),
    (36, "Drive temperature", _W, "Drive temperature"),
    (37, "Drive voltage", _W, "Drive voltage"),
    (38, "Predictive failure", _C, "Predictive failure"),
    (39, "Diagnostics required", _W, "Diagnostics required"),
    (50, "Lost statistics", _W, "Lost statistics"),
    (51, "Tape directory invalid at unload", _W, "Tape directory invalid at unload"),
    (52, "Tape system area write failure", _C, "Tape system area write failure"),
    (53, "Tape system area read failure", _C, "Tape system area read failure"),
    (54, "No start of data", _C, "No start of data"),
    (55, "Loading failure", _C, "Loading failure"),
    (56, "Unrecoverable unload failure", _C, "Unrecoverable unload failure"),
    (57, "Automation interface failure", _C, "Automation interface failure"),
    (58, "Firmware failure", _W, "Firmware failure"),
    (59, "WORM medium - integrity check failed", _W, "WORM medium - integrity check failed"),
    (60, "WORM medium - overwrite attempted", _W, "WORM medium - overwrite attempted"),
)

#: The TapeAlert table by flag number.  40-46 are obsolete (changer flags of
#: SSC-2), 47-49 and 61-64 reserved: they get a generic row.
TAPEALERT: dict[int, TapeAlertFlag] = {n: TapeAlertFlag(n, name, sev, sg) for n, name, sev, sg in _ROWS}


def tapealert_flag(number: int) -> TapeAlertFlag:
    """The table row of flag ``number``; obsolete and reserved numbers get a generic one."""
    if number in TAPEALERT:
        return TAPEALERT[number]
    kind = "Obsolete" if 40 <= number <= 46 else "Reserved"
    return TapeAlertFlag(number, f"{kind} ({number:02X}h)", WARNING, f"{kind} ({number:02X}h)")


@dataclass(frozen=True)
class ErrorCounters:
    """One direction's error counter page (0x02 write, 0x03 read); None where not reported."""

    corrected: int | None = None
    uncorrected: int | None = None
    bytes_processed: int | None = None


@dataclass(frozen=True)
class DriveHealth:
    """What a drive reports about its health at one moment.

    :param tapealert: the flags set, ascending.
    :param write: write error counters; None when the drive did not report them.
    :param read: read error counters; None likewise.
    :param volume: extra counters (volume statistics, sequential access page), by name.
    :param cleaning_required: the Sequential access device page's cleaning bit;
        None when the drive did not report it.
    :param available: False when nothing could be read (no sg_logs, drive not answering).
    """

    tapealert: tuple[int, ...] = ()
    write: ErrorCounters | None = None
    read: ErrorCounters | None = None
    volume: dict[str, int] = field(default_factory=dict)
    cleaning_required: bool | None = None
    available: bool = True

    @property
    def flags(self) -> list[TapeAlertFlag]:
        """The set flags' table rows."""
        return [tapealert_flag(n) for n in self.tapealert]

    @property
    def needs_cleaning(self) -> bool:
        """TapeAlert 20 (clean now) or 21 (clean periodic) is set, or the 0x0C page asks for cleaning."""
        return bool(self.cleaning_required) or any(n in CLEANING_FLAGS for n in self.tapealert)

    @property
    def worst(self) -> str | None:
        """The most severe severity among the set flags, None when none is set."""
        order = (CRITICAL, WARNING, INFO)
        present = {f.severity for f in self.flags}
        return next((s for s in order if s in present), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: flags with number, name and severity; counters; cleaning."""
        return {
            "available": self.available,
            "tapealert": [{"number": f.number, "name": f.name, "severity": f.severity} for f in self.flags],
            "needs_cleaning": self.needs_cleaning,
            "cleaning_required": self.cleaning_required,
            "write_errors": asdict(self.write) if self.write is not None else None,
            "read_errors": asdict(self.read) if self.read is not None else None,
            "volume": dict(self.volume),
        }


# --- from sg_logs' parsed pages --------------------------------------------------------

_BY_SG_KEY = {re.sub(r"[^0-9a-z]+", "_", f.sg_name.lower()).strip("_"): f.number for f in TAPEALERT.values()}
_HEX_KEY = re.compile(
    r"^(?:obsolete|reserved)_(?P<code>[0-9a-f]{2})h$"  # Obsolete (28h), Reserved (2Fh)
    r"|^reserved_parameter_code_0x(?P<pc>[0-9a-f]+)_flag$"  # Reserved parameter code 0x3d, flag
)


def tapealert_from_values(values: dict[str, Any]) -> tuple[int, ...]:
    """The set flags of a parsed Tape alert page (0x2E), ascending.

    ``values`` maps sg_logs' snake_case names to 0/1, in page order.  A flag
    is recognised by its sg_logs name, by the hex code in ``Obsolete (28h)``
    / ``Reserved parameter code 0x3d, flag``, or, for a name this table does
    not know (another sg3_utils version), as the one after the previous flag.
    """
    found: set[int] = set()
    previous = 0
    for key, value in values.items():
        number = _BY_SG_KEY.get(key)
        if number is None and (m := _HEX_KEY.match(key)):
            number = int(m["code"] or m["pc"], 16)
        if number is None:
            number = previous + 1
        previous = number
        if isinstance(value, int) and not isinstance(value, bool) and value != 0 and 1 <= number <= 64:
            found.add(number)
    return tuple(sorted(found))


def counters_from_values(values: dict[str, Any] | None) -> ErrorCounters | None:
    """An error counter page (0x02/0x03) as parsed by :mod:`.sg_logs`; None when absent."""
    if not values:
        return None

    def number(key: str) -> int | None:
        value = values.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return ErrorCounters(
        corrected=number("total_errors_corrected"),
        uncorrected=number("total_uncorrected_errors"),
        bytes_processed=number("total_bytes_processed"),
    )
