"""The ``pytp`` command: the group, its global options, and the command modules."""

from __future__ import annotations

import click

from .app import App, PytpGroup


@click.group(cls=PytpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PYTP_CONFIG",
    help="Configuration file (default: $PYTP_CONFIG, then ~/.config/pytp/config.json).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="PYTP_DEBUG",
    help="Print the traceback of an error (also: PYTP_DEBUG=1).",
)
@click.version_option(package_name="pytp")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """pytp: catalog-centric tape backup for LTO drives and tape libraries.

    Every backup records each file, its xxh3 checksum and its tape position in
    a catalog, so that search, restore and verify go straight to the right
    tape, tape file and block.  Exit codes: see `pytp exit-codes`.
    """
    ctx.obj = App(config_path)


def _register() -> None:
    from . import (
        backup_cmd,
        catalog_admin_cmd,
        catalog_cmd,
        config_cmd,
        copy_cmd,
        db_cmd,
        drives_cmd,
        history_cmd,
        label_cmd,
        library_cmd,
        pools_cmd,
        report_cmd,
        restore_cmd,
        scrub_cmd,
        tape_admin_cmd,
        tape_cmd,
        vault_cmd,
    )

    for module in (
        tape_cmd,
        library_cmd,
        pools_cmd,
        tape_admin_cmd,
        vault_cmd,
        drives_cmd,
        label_cmd,
        backup_cmd,
        restore_cmd,
        copy_cmd,
        catalog_cmd,
        scrub_cmd,
        history_cmd,
        report_cmd,
        catalog_admin_cmd,
        db_cmd,
        config_cmd,
    ):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="pytp")


if __name__ == "__main__":
    main()
