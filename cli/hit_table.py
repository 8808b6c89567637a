"""The table ``pytp search`` prints on a terminal, made without tabulate where it can be.

tabulate's "simple" table of 1,000 hits cost ~55–85 ms of CPU (it types and
measures each of 8,000 cells in Python): for a rare or medium pattern at 10M
entries, more than the search itself (issue 9, docs/performance.md).  For the
plain case, which is nearly every search, the same text is made here in a few
milliseconds: cells that are ``int`` (right-aligned), ``None`` (blank) or
printable ASCII text that cannot be read as a number (left-aligned).  Anything
else (a name with other characters, whose width tabulate measures with
wcwidth; a host or tape that looks like a number, which tabulate aligns as one)
returns None, and the caller prints with tabulate as before.
"""

from __future__ import annotations

import re

import click

#: tabulate pads a header by two characters (``tabulate.MIN_PADDING``)
_HEADER_PADDING = 2
#: text that no number literal contains (tabulate reads "1e5", "0x1f", "nan", "inf" as numbers)
_NOT_A_NUMBER = re.compile(r"[^0-9a-fA-FxXoObBiInNtTyY.+\-_ ]")


def print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    """Print ``rows`` as ``emit(rows, "table", columns)`` does, quickly when the cells are plain."""
    table = hit_table(rows, columns)
    if table is None:
        from .app import emit

        emit(rows, "table", columns)
    else:
        click.echo(table)


def hit_table(rows: list[dict[str, object]], columns: list[str]) -> str | None:
    """``tabulate([[row[c] or "" …]], headers=columns, tablefmt="simple")`` for plain
    cells (as ``cli.app.emit`` calls it, ``None`` shown blank), or None."""
    cells = [[row.get(c) for c in columns] for row in rows]
    widths, right = [], []
    for i, header in enumerate(columns):
        values = [r[i] for r in cells]
        kinds = {v.__class__ for v in values if v is not None and v != ""}
        if kinds == {int}:
            right.append(True)
            widths.append(max([len(header) + _HEADER_PADDING, *(len(str(v)) for v in values if v is not None)]))
        elif kinds <= {str}:
            if not all(_plain(v) for v in values if v):
                return None
            right.append(False)
            widths.append(max([len(header) + _HEADER_PADDING, *(len(str(v)) for v in values if v)]))
        else:
            return None  # bool, float, bytes, lists: tabulate's own rules
    lines = [
        "  ".join(h.rjust(w) if r else h.ljust(w) for h, w, r in zip(columns, widths, right)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for row in cells:
        lines.append(
            "  ".join(
                ("" if v is None else str(v)).rjust(w) if r else ("" if v is None else str(v)).ljust(w)
                for v, w, r in zip(row, widths, right)
            ).rstrip()
        )
    return "\n".join(lines)


def _plain(text: object) -> bool:
    return (
        isinstance(text, str)
        and text.isascii()
        and text.isprintable()
        and _NOT_A_NUMBER.search(text) is not None
        and text == text.strip()
    )
