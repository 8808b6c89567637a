"""`pytp db upgrade` and `pytp db current`."""

from __future__ import annotations

import click

from .app import App, pass_app


@click.group()
def db() -> None:
    """Catalog database maintenance."""


@db.command()
@pass_app
def upgrade(app: App) -> None:
    """Upgrade the catalog schema to this pytp's version (creates it if new).

    \b
    Example:
        pytp db upgrade
    """
    from pytp.catalog.database import make_engine
    from pytp.catalog.database import upgrade as run_upgrade

    before, after = run_upgrade(make_engine(app.config.catalog_url))
    if before == after:
        click.echo(f"Catalog is at schema {after}; nothing to do.")
    else:
        click.echo(f"Catalog upgraded from schema {before or '(empty)'} to {after}.")


@db.command()
@pass_app
def current(app: App) -> None:
    """Show the catalog's schema version and this pytp's, and what to do if they differ.

    \b
    Example:
        pytp db current
    """
    from pytp.catalog.database import current_revision, head_revision, known_revision, make_engine

    current, head = current_revision(make_engine(app.config.catalog_url)), head_revision()
    if current is None:
        state = "new: created at first use"
    elif current == head:
        state = "up to date"
    elif known_revision(current):
        state = "older: run `pytp db upgrade`"
    else:
        state = "newer than this pytp: install the pytp that upgraded it"
    click.echo(f"catalog: {current or '(empty)'}, pytp: {head} ({state})")


COMMANDS = [db]
