"""``pytp tape retire|unretire``: take a tape out of writing and recycling, or bring it back."""

from __future__ import annotations

import click

from .app import App, pass_app


@click.group(name="tape")
def tape_group() -> None:
    """Tape administration: retire a tape, or bring a retired one back."""


def _set(app: App, label: str, retired: bool) -> None:
    from sqlmodel import Session

    from pytp.catalog.volumes import set_retired

    with Session(app.engine) as session:
        volume = set_retired(session, label, retired)
        status = volume.status
    click.echo(f"Tape {label} is now {status}.")


@tape_group.command()
@click.argument("label")
@pass_app
def retire(app: App, label: str) -> None:
    """Retire a tape: never written to or recycled again, still read for restores.

    \b
    Example:
        pytp tape retire PYT003L9
    """
    _set(app, label, True)


@tape_group.command()
@click.argument("label")
@pass_app
def unretire(app: App, label: str) -> None:
    """Bring a retired tape back: appendable again, its data kept.

    \b
    Example:
        pytp tape unretire PYT003L9
    """
    _set(app, label, False)


COMMANDS = [tape_group]
