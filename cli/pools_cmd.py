"""``pytp pools``: pools with their totals; ``pools create|edit`` change the configuration file."""

from __future__ import annotations

import click

from .app import App, emit, human_bytes, output_option, pass_app


@click.group(invoke_without_command=True)
@output_option
@pass_app
@click.pass_context
def pools(ctx: click.Context, app: App, fmt: str) -> None:
    """Pools with their tapes by status, space used and free; create or edit them.

    Free space counts appendable tapes; ``blank`` counts the unlabelled
    cartridges in the libraries that the pool would take.

    \b
    Examples:
        pytp pools --format json
        pytp pools create offsite --retention-days 365 --label-prefix OFF
        pytp pools edit offsite --retention-days 730
    """
    if ctx.invoked_subcommand is not None:
        return
    from pytp.catalog.inventory import POOL_FIELDS, pool_rows
    from pytp.catalog.light_sql import listing_reader

    with listing_reader(app.config.catalog_url, lambda: app.engine) as reader:
        rows = pool_rows(reader, app.config)
    if fmt != "table":
        emit(rows, fmt, list(POOL_FIELDS))
        return
    sizes = ("bytes_written", "capacity", "free")
    emit([{**r, **{k: human_bytes(r[k]) for k in sizes}} for r in rows], fmt, list(POOL_FIELDS))


@pools.command()
@click.argument("name")
@click.option("--retention-days", type=click.IntRange(min=0), required=True, help="Days data is kept.")
@click.option("--label-prefix", help="Only cartridges whose barcode starts with this join the pool.")
@pass_app
def create(app: App, name: str, retention_days: int, label_prefix: str | None) -> None:
    """Add a pool to the configuration file.

    \b
    Example:
        pytp pools create offsite --retention-days 365 --label-prefix OFF
    """
    from pytp.catalog.pool_config import create_pool

    create_pool(app.config, name, retention_days, label_prefix)
    click.echo(f"Pool '{name}' added to {app.config.path}.")


@pools.command()
@click.argument("name")
@click.option("--retention-days", type=click.IntRange(min=0), help="Days data is kept.")
@click.option("--label-prefix", help="Barcode prefix of the pool's cartridges ('' removes it).")
@pass_app
def edit(app: App, name: str, retention_days: int | None, label_prefix: str | None) -> None:
    """Change a pool's retention or barcode prefix in the configuration file.

    A shorter retention takes effect at once: tapes whose data left it show
    ``expired`` and may be recycled.

    \b
    Example:
        pytp pools edit offsite --retention-days 730
    """
    from pytp.catalog.pool_config import edit_pool

    edit_pool(app.config, name, retention_days=retention_days, label_prefix=label_prefix)
    click.echo(f"Pool '{name}' changed in {app.config.path}.")


COMMANDS = [pools]
