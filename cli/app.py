"""Shared plumbing of the commands: the app context, errors → exit codes, output.

Resources are opened here, once, never inside each command (borg's
``with_repository``, sqlite-utils' ``output_options``).  The catalog is
imported only by commands that use it, so tape commands start quickly.
"""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import click

from pytp.catalog.errors import CatalogError
from pytp.tapeio.errors import TapeIOError
from pytp.tapeio.exitcodes import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_WARNING

from .help_format import GroupedHelp

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pytp.catalog.config import Config
    from pytp.catalog.devices import Selection
    from pytp.tapeio.drive import Drive


class App:
    """Per-invocation state: the configuration and, when needed, the catalog."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    @cached_property
    def config(self) -> Config:
        # Imported here: help, exit-codes and usage errors read no configuration.
        from pytp.catalog.config import load_config

        config = load_config(self.config_path)
        if config.created:
            lib = config.libraries[0]
            click.echo(
                f"pytp: created the embedded default configuration {config.path} "
                f"(virtual library '{lib.name}' with 8 tapes, catalog {config.catalog_url}).",
                err=True,
            )
        return config

    @cached_property
    def engine(self) -> Engine:
        from pytp.catalog.database import open_catalog

        return open_catalog(self.config.catalog_url, on_reconciled=lambda job: warn(str(job)))

    def select(self, drive: str | None = None, library: str | None = None) -> Selection:
        from pytp.catalog.devices import release_unused, select

        # The chosen drive stays taken until the command ends, used or not.
        click.get_current_context().call_on_close(release_unused)
        return select(self.config, drive, library)

    @contextmanager
    def open_drive(self, drive: str | None = None, library: str | None = None) -> Iterator[Drive]:
        """The selected drive, locked and open for the duration of the block."""
        from pytp.catalog.devices import drive_lock, open_drive

        selection = self.select(drive, library)
        with drive_lock(selection.drive):
            handle = open_drive(selection.drive)
            try:
                yield handle
            finally:
                handle.close()


pass_app = click.make_pass_decorator(App)


class PytpGroup(GroupedHelp):
    """A group with the original pytp's aliases, grouped help, and one place for errors."""

    aliases = {
        "stat": "status",
        "pos": "position",
        "g": "goto",
        "rew": "rewind",
        "ret": "retension",
        "b": "backup",
        "r": "restore",
        "v": "verify",
        "inventory": "tapes",
    }

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        # Show the real name in usage messages when an alias was typed.
        _, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and not isinstance(cmd, click.Group):
            refuse_repeated_options(cmd, rest, ctx)
        return cmd.name if cmd else None, cmd, rest

    def invoke(self, ctx: click.Context) -> Any:
        # The one place where errors become `Error: …` and an exit code.  Any
        # exception, expected or not, ends here: exit 1 means only "partial
        # job", so a bug exits 3, with its traceback under --debug alone.
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.UsageError):
            raise  # a command's own exit code; click's usage errors (exit 2)
        except KeyboardInterrupt:
            fail(ctx, "interrupted.", EXIT_INTERRUPTED)
        except BrokenPipeError as err:
            if not _stdout_closed():
                message, code = describe_error(err)
                fail(ctx, message, code)
            # `pytp jobs | head -1`: quiet, like a shell tool, and nothing more to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_PIPE)
        except click.Abort:
            # click.prompt/confirm on Ctrl-C or end of input
            fail(ctx, "aborted.", EXIT_INTERRUPTED)
        except Exception as err:  # noqa: BLE001 - see above
            message, code = describe_error(err)
            fail(ctx, message, code)


def refuse_repeated_options(cmd: click.Command, args: list[str], ctx: click.Context) -> None:
    """An option that takes one value, given twice, is a usage error: click keeps the last,
    so `restore --job 1 --job 14` restored job 14 alone and said nothing of job 1.

    Flags (``--keep-loaded`` twice says the same) and options that take several are let through.
    """
    takes_value: dict[str, click.Option] = {}
    for param in cmd.params:
        if isinstance(param, click.Option) and not (param.count or param.is_flag):
            takes_value.update((name, param) for name in param.opts)
    seen: dict[str, str] = {}
    values = iter(args)
    for arg in values:
        if arg == "--":
            break
        name, joined, _ = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        param = takes_value.get(name)
        if param is None:
            continue
        if not joined:
            next(values, None)  # its value, whatever it looks like
        if param.multiple:
            continue
        if param.name in seen:
            raise click.UsageError(f"{seen[param.name]} was given twice; give it once.", ctx)
        seen[param.name or name] = name


def _stdout_closed() -> bool:
    """Whether nothing reads standard output any more (a pipe whose reader has gone)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def describe_error(err: Exception) -> tuple[str, int]:
    """The one-line message and exit code for any exception a command raised."""
    if isinstance(err, (TapeIOError, CatalogError)):
        return str(err), err.exit_code
    if isinstance(err, click.ClickException):
        return err.format_message(), EXIT_ERROR if err.exit_code == EXIT_WARNING else err.exit_code
    light_sql = sys.modules.get("pytp.catalog.light_sql")
    if light_sql is not None and light_sql.interrupted_in_regexp():
        return "interrupted.", EXIT_INTERRUPTED  # SQLite reported Ctrl-C inside REGEXP as its own error
    if "sqlalchemy" in sys.modules:  # only a command that opened the catalog can raise these
        from pytp.catalog.database import catalog_error

        mapped = catalog_error(err)
        if mapped is not None:
            return str(mapped), mapped.exit_code
    if isinstance(err, OSError):
        return os_error_message(err), EXIT_ERROR
    first = (str(err).strip().splitlines() or [""])[0]
    return (
        f"unexpected {type(err).__name__}: {first} (run with --debug for the traceback, and report it)",
        EXIT_ERROR,
    )


def os_error_message(err: OSError) -> str:
    """``No space left on device: /path`` and what to do, for OS errors no layer wrapped."""
    text = err.strerror or str(err)
    if err.filename is not None:
        text += f": {os.fsdecode(err.filename)}"
        if err.filename2 is not None:
            text += f" -> {os.fsdecode(err.filename2)}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        text += " (the disk or file size limit is full: free space and run the command again)"
    return text + "."


def fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    """Print ``Error: message`` (after the traceback under --debug) and exit with ``code``."""
    if ctx.find_root().params.get("debug"):  # --debug, or PYTP_DEBUG=1 through click's envvar
        import traceback  # only here: most commands end without an error

        traceback.print_exc(file=sys.stderr)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


# ---------------------------------------------------------------- output
FORMATS = ("table", "json", "csv")


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format table|json|csv`` for commands whose output is data."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)


def emit(rows: list[dict[str, Any]], fmt: str, columns: list[str] | None = None, empty: str = "") -> None:
    """Print ``rows`` as a table, a JSON array or CSV."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    columns = columns or (list(rows[0]) if rows else [])
    if fmt == "csv":
        import csv  # only here: tables and JSON are the common outputs

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        click.echo(buffer.getvalue(), nl=False)
        return
    if not rows:
        if empty:
            click.echo(empty)
        return
    # Imported here: tabulate brings wcwidth and importlib.metadata, ~4x the
    # cost of click itself, and most commands print no table (issue 9).
    from tabulate import tabulate

    table = [[_table_cell(row.get(c)) for c in columns] for row in rows]
    click.echo(tabulate(table, headers=columns, tablefmt="simple"))


#: control characters as a table shows them: a name with a newline or a tab must not break its row
_VISIBLE_CONTROLS = {
    code: "\\n" if code == 10 else "\\t" if code == 9 else "\\r" if code == 13 else f"\\x{code:02x}"
    for code in [*range(32), 127]
}


def _table_cell(value: Any) -> Any:
    cell = _cell(value)
    return cell.translate(_VISIBLE_CONTROLS) if isinstance(cell, str) else cell


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        # objects (TapeAlert flags) as their values: "4:Media:critical"
        return ",".join(":".join(map(str, v.values())) if isinstance(v, dict) else str(v) for v in value)
    return "" if value is None else value


def human_bytes(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def parse_size(text: str) -> int:
    """``4G``, ``512K``, ``1.5GiB``, ``1048576`` → bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    raw = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = raw, ""
    if raw and raw[-1] in "KMGT":
        number, unit = raw[:-1], raw[-1]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise click.BadParameter(f"'{text}' is not a size like 512K, 4G or 1048576") from None
    return int(value)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)
