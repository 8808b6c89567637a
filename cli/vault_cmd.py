"""``pytp vault export|import|list|report``: tapes off-site and back (issue 11, part 1)."""

from __future__ import annotations

from typing import Any

import click

from .app import App, emit, output_option, pass_app

library_option = click.option("-l", "--library", help="Library name (default: $PYTP_LIB, then the first one).")

EXPORT_FIELDS = ["label", "barcode", "vault", "since", "library", "mail_slot", "unloaded_from"]
IMPORT_FIELDS = ["mail_slot", "slot", "barcode", "result", "label", "vault", "note"]


@click.group()
def vault() -> None:
    """Send tapes to vaults through the import/export slots, take them back, and report."""


@vault.command(name="export")
@click.argument("tapes", nargs=-1, required=True)
@click.option("--to", "to", required=True, help="The vault the tapes go to, e.g. offsite-A.")
@library_option
@output_option
@pass_app
def export_command(app: App, tapes: tuple[str, ...], to: str, library: str | None, fmt: str) -> None:
    """Move TAPES (labels or barcodes) into empty import/export slots and record them in a vault.

    A tape in a drive is unloaded first, unless a running job holds the
    drive (refused, exit 6).  No empty mail slot: exit 9, and the tapes not
    moved are not recorded.  Take the tapes out of the mail slots named.

    \b
    Example:
        pytp vault export PYT001L9 PYT002L9 --to offsite-A
    """
    from pytp.catalog.vault import export_tapes, iso

    rows: list[dict[str, Any]] = []
    try:
        for done in export_tapes(app.engine, app.config, list(tapes), to, library=library):
            rows.append({**done.__dict__, "since": iso(done.since)})
    finally:
        # What was exported before an error is recorded: say so, and where to take it from.
        if fmt != "table":
            emit(rows, fmt, EXPORT_FIELDS)
        for row in rows if fmt == "table" else []:
            drive = f" (unloaded from drive {row['unloaded_from']})" if row["unloaded_from"] else ""
            click.echo(
                f"Tape {row['label']} ({row['barcode']}){drive} is in import/export slot {row['mail_slot']} "
                f"of library {row['library']}: take it out for vault {row['vault']}."
            )


@vault.command(name="import")
@library_option
@click.option("-d", "--drive", help="Drive to read labels with (default: $PYTP_DEV, then a free drive of the library).")
@output_option
@pass_app
def import_command(app: App, library: str | None, drive: str | None, fmt: str) -> None:
    """Take every cartridge from the import/export slots into storage slots and say what it is.

    Each is loaded and its label read: a known tape is recorded as back from
    its vault; blank, cleaning (CLN…), unknown (labelled by another catalog)
    and foreign cartridges are listed; a label that disagrees with the
    barcode is reported and not trusted.  No empty storage slot: exit 9, the
    rest stay in the mail slots.

    \b
    Example:
        pytp vault import --library msl2024
    """
    from pytp.catalog.vault import import_tapes

    rows: list[dict[str, Any]] = []
    try:
        for found in import_tapes(app.engine, app.config, app.select(drive, library)):
            rows.append(dict(found.__dict__))
    finally:
        emit(rows, fmt, IMPORT_FIELDS, empty="No cartridges were taken from the import/export slots.")


@vault.command(name="list")
@output_option
@pass_app
def list_command(app: App, fmt: str) -> None:
    """List the tapes in vaults: since when, their retention, and whether they are due back.

    \b
    Example:
        pytp vault list --format json
    """
    from sqlmodel import Session

    from pytp.catalog.vault import LIST_FIELDS, vault_rows

    with Session(app.engine) as session:
        rows = vault_rows(session, app.config)
    emit(rows, fmt, list(LIST_FIELDS), empty="No tape is in a vault.")


@vault.command(name="report")
@click.option(
    "--copies",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Copies (the original included) each kept job should have.",
)
@output_option
@pass_app
def report_command(app: App, copies: int, fmt: str) -> None:
    """Jobs with fewer than N copies, jobs whose copies are all in one place, and tapes due back.

    \b
    Example:
        pytp vault report --copies 2 --format csv
    """
    from sqlmodel import Session

    from pytp.catalog.vault_report import REPORT_FIELDS, vault_report

    with Session(app.engine) as session:
        rows = vault_report(session, app.config, copies)
    emit(rows, fmt, list(REPORT_FIELDS), empty="Nothing to report: every kept job has its copies in two places.")


COMMANDS = [vault]
