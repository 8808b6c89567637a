"""The ``pytp`` command: the group, its global options, and the table of its commands.

Each command's module is imported only when the command runs (issue 9: fast
start-up): ``pytp status`` imports the drive commands' module and never the
catalog stack, ``pytp --help`` none of them.  :data:`COMMAND_TABLE` says where
each command lives and what ``--help`` shows for it;
``tests/cli/test_lazy_commands.py`` checks that it says what the modules'
``COMMANDS`` lists define, so a new or renamed command cannot go missing.
"""

from __future__ import annotations

import click

from .app import App, PytpGroup
from .lazy_commands import CommandEntry

#: every command: its name, the module whose ``COMMANDS`` defines it, its first sentence of help
COMMAND_TABLE: tuple[CommandEntry, ...] = (
    CommandEntry("init", "pytp.cli.tape_cmd", "Put the drive in fixed-block mode at the configured block size."),
    CommandEntry(
        "status", "pytp.cli.tape_cmd", "Show the drive's position, block size, status bits, and the tape in it."
    ),
    CommandEntry("position", "pytp.cli.tape_cmd", "Print the tape file number the head is in (-1 if unknown)."),
    CommandEntry("goto", "pytp.cli.tape_cmd", "Go to BLOCK of the current tape file, or print the block number."),
    CommandEntry("rewind", "pytp.cli.tape_cmd", "Rewind the tape."),
    CommandEntry("retension", "pytp.cli.tape_cmd", "Retension the tape (wind to the end and back)."),
    CommandEntry("ff", "pytp.cli.tape_cmd", "Skip COUNT filemarks forward (to the start of a later tape file)."),
    CommandEntry(
        "bb", "pytp.cli.tape_cmd", "Go back COUNT tape files, to the start of that file (rewinds past the start)."
    ),
    CommandEntry(
        "ls", "pytp.cli.tape_cmd", "List the tar archive at the current position; the head then moves to the next file."
    ),
    CommandEntry(
        "list", "pytp.cli.library_cmd", "Show the library's drives, slots and import/export slots with barcodes."
    ),
    CommandEntry(
        "load", "pytp.cli.library_cmd", "Load the tape from SLOT into the drive (putting a loaded tape back first)."
    ),
    CommandEntry(
        "unload", "pytp.cli.library_cmd", "Unload the drive into SLOT, or back into the slot the tape came from."
    ),
    CommandEntry(
        "move",
        "pytp.cli.library_cmd",
        "Move a tape from slot SOURCE to slot DESTINATION (import/export slots included).",
    ),
    CommandEntry("library", "pytp.cli.library_cmd", "Manage configured libraries."),
    CommandEntry(
        "pools", "pytp.cli.pools_cmd", "Pools with their tapes by status, space used and free; create or edit them."
    ),
    CommandEntry("tape", "pytp.cli.tape_admin_cmd", "Tape administration: retire a tape, or bring a retired one back."),
    CommandEntry(
        "vault",
        "pytp.cli.vault_cmd",
        "Send tapes to vaults through the import/export slots, take them back, and report.",
    ),
    CommandEntry(
        "drives",
        "pytp.cli.drives_cmd",
        "List the configured drives: loaded tape, whether in use, TapeAlert flags and error counters.",
    ),
    CommandEntry(
        "clean",
        "pytp.cli.drives_cmd",
        "Clean DRIVE with a cleaning cartridge (barcode CLN…) from its library, then put the cartridge back.",
    ),
    CommandEntry(
        "label", "pytp.cli.label_cmd", "Write a volume label (tape file 0); by default the cartridge's barcode."
    ),
    CommandEntry(
        "backup", "pytp.cli.backup_cmd", "Back up DIRS to tape: one tar archive per directory, appended at end of data."
    ),
    CommandEntry(
        "restore",
        "pytp.cli.restore_cmd",
        "Restore files into TARGET_DIR: looked up in the catalog, read from their blocks.",
    ),
    CommandEntry(
        "copy", "pytp.cli.copy_cmd", "Copy jobs or whole tapes onto copy tapes of another pool, block for block."
    ),
    CommandEntry(
        "search", "pytp.cli.catalog_cmd", "Find backed-up files by name: a substring, a glob (* ? [), or --regex."
    ),
    CommandEntry(
        "jobs", "pytp.cli.catalog_cmd", "List backup jobs, newest first; with JOB_ID, one job in detail with its log."
    ),
    CommandEntry(
        "tapes",
        "pytp.cli.catalog_cmd",
        "Tape inventory: every tape with its place, pool, status, space, jobs and dates.",
    ),
    CommandEntry(
        "verify", "pytp.cli.catalog_cmd", "Read the data back and compare every member's xxh3 with the catalog."
    ),
    CommandEntry("exit-codes", "pytp.cli.catalog_cmd", "Print the table of exit codes."),
    CommandEntry(
        "scrub",
        "pytp.cli.scrub_cmd",
        "Verify the tapes most in need, each whole, and record when and with what result.",
    ),
    CommandEntry(
        "versions",
        "pytp.cli.history_cmd",
        "List every version of PATH across jobs and tapes, newest first (deletions too).",
    ),
    CommandEntry(
        "ls-catalog", "pytp.cli.history_cmd", "List a directory as the catalog knows it (newest versions, or --as-of)."
    ),
    CommandEntry(
        "report",
        "pytp.cli.report_cmd",
        "Write a self-contained HTML report: library, pools, jobs per day, tapes due, problems.",
    ),
    CommandEntry(
        "catalog",
        "pytp.cli.catalog_admin_cmd",
        "The catalog itself: rebuild it from tapes, back it up to tape, restore it.",
    ),
    CommandEntry("db", "pytp.cli.db_cmd", "Catalog database maintenance."),
    CommandEntry("config", "pytp.cli.config_cmd", "Show the effective configuration and where it came from."),
)


@click.group(
    cls=PytpGroup,
    lazy_commands=COMMAND_TABLE,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# $PYTP_CONFIG is read by catalog.config.load_config, not click: messages then name where
# the file came from, and a wrong one is a configuration error (exit 4), not a usage one.
@click.option(
    "--config",
    "config_path",
    type=click.Path(),
    help="Configuration file (default: $PYTP_CONFIG, then $XDG_CONFIG_HOME/pytp/config.json, ~/.config when unset).",
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


def main() -> None:
    cli(prog_name="pytp")


if __name__ == "__main__":
    main()
