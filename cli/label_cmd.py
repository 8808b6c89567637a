"""`pytp label`: write volume labels."""

from __future__ import annotations

import click

from .app import App, pass_app


@click.command()
@click.argument("label", required=False)
@click.option("-d", "--drive", help="Drive to label in (default: $PYTP_DEV, then the library's first free drive).")
@click.option("-l", "--library", help="Library to load from.")
@click.option("--slot", type=int, help="Label the cartridge in this slot.")
@click.option("--barcode", help="Label the cartridge with this barcode.")
@click.option("--pool", help="Pool the tape belongs to (default: its pool, else the default pool).")
@click.option("--barcodes", "all_barcodes", is_flag=True, help="Label every blank cartridge the catalog does not know.")
@click.option("--force", is_flag=True, help="Overwrite data in retention, foreign data or another catalog's tape.")
@click.option("--confirm", help="With --force: the new label typed again (asked for when omitted).")
@pass_app
def label(
    app: App,
    label: str | None,
    drive: str | None,
    library: str | None,
    slot: int | None,
    barcode: str | None,
    pool: str | None,
    all_barcodes: bool,
    force: bool,
    confirm: str | None,
) -> None:
    """Write a volume label (tape file 0); by default the cartridge's barcode.

    A tape with data still in retention is refused; --force overwrites it
    only when the label is typed again, since everything on it is lost.

    \b
    Examples:
        pytp label --slot 3 --pool archive
        pytp label --barcodes
        pytp label --barcode PYT004L9 --force
    """
    from pytp.catalog.labels import label_barcodes, label_tape

    if slot is not None and barcode is not None:
        raise click.UsageError("Give --slot or --barcode, not both.")
    selection = app.select(drive, library)
    if all_barcodes:
        for line in label_barcodes(app.engine, app.config, selection, pool):
            click.echo(line)
        return
    if force and confirm is None:
        target = label or barcode or "the new label"
        confirm = click.prompt(
            f"This destroys everything on the tape. Type {target} again to confirm", default="", show_default=False
        )
    result = label_tape(
        app.engine,
        app.config,
        selection,
        text=label,
        slot=slot,
        barcode=barcode,
        pool=pool,
        force=force,
        confirm=confirm,
    )
    verb = "Relabelled" if result.relabelled else "Labelled"
    click.echo(f"{verb} tape {result.label} (barcode {result.barcode or 'none'}) in pool {result.pool}.")


COMMANDS = [label]
