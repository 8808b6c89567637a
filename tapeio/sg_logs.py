"""Tape log pages through ``sg_logs`` (sg3-utils): a pure parser and a tiny runner.

The pages pytp reads are Volume statistics (0x17: barcode, lifetime megabytes,
capacity used and remaining per partition, write protect), the Write/Read
error counters (0x02/0x03) and the TapeAlert flags (0x2E, see
:mod:`.health`).  They enrich an inventory; they are never needed,
so :func:`read_volume_statistics` answers None when sg_logs is missing or the
drive does not answer, instead of failing the command that asked.

sg_logs prints one header per page at column 0 (``Write error counter page
[0x2]``, ``Volume statistics page (ssc-4), subpage=0``), then ``  name = value``
or ``  name: value`` lines indented by two; hex dumps start with one space and
are skipped.  Names become snake_case keys: ``Total native capacity [MB]`` →
``total_native_capacity_mb``.  Per-partition lists (``partition number: 0,
partition record data counter: 127118``) become ``{partition: value}``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from .health import DriveHealth, counters_from_values, tapealert_from_values

#: A value from a log page: a number, a text (barcode, serial), True for a line
#: that is a statement without a value, or a per-partition/sub-block mapping.
LogValue = int | str | bool | dict[int, int] | dict[str, "int | str | bool"]

VOLUME_STATISTICS = 0x17
_UNIT_ATTENTION = 6
WRITE_ERROR_COUNTERS = 0x02
READ_ERROR_COUNTERS = 0x03
SEQUENTIAL_ACCESS = 0x0C
TAPE_ALERT = 0x2E

# Headers that do not carry their page code in brackets (sg3_utils 1.46).
_TITLE_CODES: tuple[tuple[str, int], ...] = (
    ("supported log pages", 0x00),
    ("write error counter page", 0x02),
    ("read error counter page", 0x03),
    ("read reverse error counter page", 0x04),
    ("verify error counter page", 0x05),
    ("non-medium error page", 0x06),
    ("sequential access device page", 0x0C),
    ("dt device status page", 0x11),
    ("tapealert response page", 0x12),
    ("device statistics page", 0x14),
    ("tape diagnostics data page", 0x16),
    ("volume statistics page", 0x17),
    ("power condition transitions page", 0x1A),
    ("tape alert page", 0x2E),
)
_CODE_IN_BRACKETS = re.compile(r"\[0x(?P<code>[0-9a-fA-F]+)\]\s*:?\s*$")
_UNDECODED = re.compile(r"page\s*=\s*0x(?P<code>[0-9a-fA-F]+)", re.IGNORECASE)
_PARTITION = re.compile(
    r"^partition number:\s*(?P<p>\d+),\s*partition record data counter:\s*(?P<v>0x[0-9a-fA-F]+|\d+)\s*$"
)
_HEXDUMP = re.compile(r"^\s*(?:[0-9a-fA-F]{2,}|\.{3,})\s{2,}")


@dataclass
class LogPage:
    """One decoded page.

    :param code: the page code, None when the header names an unknown page.
    :param title: the header line as printed.
    :param values: snake_case name → value.
    """

    code: int | None
    title: str
    values: dict[str, LogValue] = field(default_factory=dict)


@dataclass
class SgLogs:
    """Everything one sg_logs run printed.

    :param device: the INQUIRY line (vendor, product, revision), spaces collapsed.
    :param pages: the pages in the order printed.
    """

    device: str | None
    pages: list[LogPage]

    def page(self, code: int) -> LogPage | None:
        """The first page with ``code``, or None."""
        return next((p for p in self.pages if p.code == code), None)


def snake_key(name: str) -> str:
    """``"Total native capacity [MB]"`` → ``"total_native_capacity_mb"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _value(text: str) -> int | str:
    """An int when the text is a plain number; codes with leading zeros stay text.

    A licence code ``0707`` or a serial ``0012`` is an identifier, not a count.
    """
    text = text.strip()
    if re.fullmatch(r"-?(0|[1-9]\d*)", text):
        return int(text)
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return int(text, 16)
    return text


def _page_code(title: str) -> int | None:
    if m := _CODE_IN_BRACKETS.search(title):
        return int(m["code"], 16)
    if title.lower().startswith("unable to decode") and (m := _UNDECODED.search(title)):
        return int(m["code"], 16)
    lowered = title.lower()
    for prefix, code in _TITLE_CODES:
        if lowered.startswith(prefix):
            return code
    return None


def _split(line: str) -> tuple[str, str] | None:
    """``(name, value)`` of a ``name = value`` / ``name: value`` line, else None."""
    if " = " in line:
        name, _, value = line.partition(" = ")
        return name, value
    if ": " in line:
        name, _, value = line.partition(": ")
        return name, value
    return None


def parse_sg_logs(text: str) -> SgLogs:
    """Parse sg_logs output: one page (``-p 0x17``) or all of them (``-a``).

    :param text: what sg_logs printed on stdout.
    """
    device: str | None = None
    pages: list[LogPage] = []
    page: LogPage | None = None
    block: dict | None = None  # the open sub-block ("Native capacity partition(s) [MB]:")
    pending: str | None = None  # a name continued on the next line

    lines = text.splitlines()
    for raw in lines:
        if not raw.strip():
            block, pending = None, None
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if indent == 0:
            page = LogPage(code=_page_code(line), title=line)
            pages.append(page)
            block, pending = None, None
            continue
        if page is None:
            if device is None:
                device = " ".join(line.split())
            continue
        if indent == 1 or _HEXDUMP.match(raw):
            continue  # hex dump of an undecoded parameter
        if pending is not None:
            if line[:1].islower():
                line = f"{pending} {line}"
                indent = 2
            else:
                page.values[snake_key(pending)] = True
            pending = None
        if indent > 2 and block is not None:
            if m := _PARTITION.match(line):
                block[int(m["p"])] = int(m["v"], 0)
            elif (pair := _split(line)) is not None:
                block[snake_key(pair[0])] = _value(pair[1])
            continue
        if re.search(r"\bin hex:?$", line):
            block = None  # the header of a hex dump that follows; nothing to decode
            continue
        if line.endswith(":") and _split(line) is None:
            block = {}
            page.values[snake_key(line[:-1])] = block
            continue
        pair = _split(line)
        if pair is None:
            # A statement ("Cleaning action not required (or completed)") or the
            # first half of a name that sg_logs wrapped onto the next line.
            pending = line
            block = None
            continue
        name, value = pair
        if not value.strip() and name.endswith(":"):
            name = name[:-1]
        page.values[snake_key(name)] = _value(value)
        block = None
    if pending is not None and page is not None:
        page.values[snake_key(pending)] = True
    return SgLogs(device=device, pages=pages)


def page_values(text: str, code: int) -> dict[str, LogValue] | None:
    """The values of page ``code`` in sg_logs output, None when it is absent or empty.

    :param text: sg_logs stdout.
    :param code: the page code (``VOLUME_STATISTICS``, ``WRITE_ERROR_COUNTERS``, ...).
    """
    page = parse_sg_logs(text).page(code)
    return dict(page.values) if page is not None and page.values else None


def parse_volume_statistics(text: str) -> dict[str, LogValue] | None:
    """Volume statistics (page 0x17) from ``sg_logs -p 0x17`` or ``sg_logs -a``.

    Keys include ``volume_barcode``, ``volume_serial_number``,
    ``lifetime_megabytes_written``, ``total_native_capacity_mb``,
    ``total_used_native_capacity_mb``, ``write_protect``,
    ``remaining_native_capacity_partition_s_mb`` ({partition: MB}).
    """
    return page_values(text, VOLUME_STATISTICS)


def parse_error_counters(text: str) -> dict[str, dict[str, LogValue]]:
    """The write (0x02) and read (0x03) error counter pages present in ``text``.

    :returns: ``{"write": {...}, "read": {...}}`` with only the pages found.
    """
    found: dict[str, dict[str, LogValue]] = {}
    for key, code in (("write", WRITE_ERROR_COUNTERS), ("read", READ_ERROR_COUNTERS)):
        values = page_values(text, code)
        if values is not None:
            found[key] = values
    return found


def parse_tapealert(text: str) -> tuple[int, ...] | None:
    """The TapeAlert flags set in ``sg_logs -p 0x2e`` (or ``-a``) output, ascending.

    None when the output holds no Tape alert page (an empty tuple: the page
    is there and no flag is set).
    """
    page = parse_sg_logs(text).page(TAPE_ALERT)
    return None if page is None else tapealert_from_values(page.values)


# --- the runner -------------------------------------------------------------------


def read_log_page(
    device: str | os.PathLike[str], code: int, *, timeout: float = 60.0, sg_logs: str = "sg_logs"
) -> dict[str, LogValue] | None:
    """Run ``sg_logs -p CODE DEVICE`` and return that page's values.

    None when sg_logs is not installed, the drive does not answer (busy,
    no tape, page not supported) or the output holds no such page: log pages
    are extra information, and their absence is not an error.

    Use the drive's ``/dev/sgN`` node, or its non-rewinding ``/dev/nstN`` while
    no other handle is open (the st driver admits one opener); a rewinding
    ``/dev/stN`` would rewind the tape when sg_logs closes it.

    :param device: the drive's device node.
    :param code: the log page code.
    :param timeout: seconds before sg_logs is given up on.
    :param sg_logs: the program to run.
    """
    program = shutil.which(sg_logs)
    if program is None:
        return None
    for _ in range(2):
        try:
            done = subprocess.run(
                [program, "-p", f"0x{code:02x}", os.fspath(device)],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        # Exit status 6 is a UNIT ATTENTION (sg3_utils' SG_LIB_CAT_UNIT_ATTENTION):
        # the first command after a tape change or reset gets it once; ask again.
        if done.returncode != _UNIT_ATTENTION:
            break
    if done.returncode != 0:
        return None
    return page_values(done.stdout, code)


def read_volume_statistics(
    device: str | os.PathLike[str], *, timeout: float = 60.0, sg_logs: str = "sg_logs"
) -> dict[str, LogValue] | None:
    """Volume statistics (page 0x17) of the tape in ``device``, or None.

    :param device: the drive's ``/dev/sgN`` (or, when not held open, ``/dev/nstN``) node.
    :param timeout: seconds before sg_logs is given up on.
    :param sg_logs: the program to run.
    """
    return read_log_page(device, VOLUME_STATISTICS, timeout=timeout, sg_logs=sg_logs)


#: The pages a drive's health is made of, in the order they are read.
HEALTH_PAGES = (TAPE_ALERT, WRITE_ERROR_COUNTERS, READ_ERROR_COUNTERS, SEQUENTIAL_ACCESS, VOLUME_STATISTICS)
_AMOUNT = re.compile(r"^(?P<n>\d+) (?P<unit>[KMGT]B)$")


def health_from_pages(pages: dict[int, dict[str, LogValue] | None]) -> DriveHealth:
    """A :class:`DriveHealth` from the parsed pages in :data:`HEALTH_PAGES` (None: not answered).

    Counters of the Sequential access device page (0x0C) and Volume
    statistics (0x17) go into ``volume`` as numbers; an amount printed with its
    unit ("12 GB") gets the unit in its key (``..._gb``).  0x0C also says
    whether the drive wants cleaning, TapeAlert or not.
    """
    extra: dict[str, int] = {}
    for code in (SEQUENTIAL_ACCESS, VOLUME_STATISTICS):
        for key, value in (pages.get(code) or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                extra[key] = value
            elif isinstance(value, str) and (m := _AMOUNT.match(value)):
                extra[f"{key}_{m['unit'].lower()}"] = int(m["n"])
    sequential = pages.get(SEQUENTIAL_ACCESS)
    cleaning: bool | None = None
    if sequential:
        if sequential.get("cleaning_action_required") is True:
            cleaning = True
        elif sequential.get("cleaning_action_not_required_or_completed") is True:
            cleaning = False
    alert = pages.get(TAPE_ALERT)
    return DriveHealth(
        tapealert=tapealert_from_values(alert) if alert else (),
        write=counters_from_values(pages.get(WRITE_ERROR_COUNTERS)),
        read=counters_from_values(pages.get(READ_ERROR_COUNTERS)),
        volume=extra,
        cleaning_required=cleaning,
        available=any(pages.get(code) for code in HEALTH_PAGES),
    )


def parse_drive_health(text: str) -> DriveHealth:
    """The health in one ``sg_logs -a`` output (pages it lacks are left out)."""
    logs = parse_sg_logs(text)
    pages: dict[int, dict[str, LogValue] | None] = {}
    for code in HEALTH_PAGES:
        page = logs.page(code)
        pages[code] = dict(page.values) if page is not None and page.values else None
    return health_from_pages(pages)


def read_drive_health(
    device: str | os.PathLike[str], *, timeout: float = 60.0, sg_logs: str = "sg_logs"
) -> DriveHealth:
    """TapeAlert flags and error counters of the drive at ``device`` (its ``/dev/sgN``).

    Pages the drive does not answer are left out; when none answers (no
    sg_logs, busy drive, no such pages) the health says ``available=False``.
    Reading the TapeAlert page clears the drive's flags (SSC: they are reset
    when read), so read it once per look and keep what it said.
    """
    return health_from_pages(
        {code: read_log_page(device, code, timeout=timeout, sg_logs=sg_logs) for code in HEALTH_PAGES}
    )
