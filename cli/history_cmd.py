"""History from the catalog, no tape needed: `pytp versions` and `pytp ls-catalog`.

Both read through search's statements (``catalog/search_query.py``): a SQLite
catalog at the schema's head with stdlib ``sqlite3``, without importing the
catalog stack; ``--as-of`` through the ORM (``catalog_cmd.search_reader``).
"""

from __future__ import annotations

import os

import click

from .app import App, emit, output_option, pass_app
from .catalog_cmd import hit_row, search_reader
from .host_option import chosen_host, host_option


@click.command()
@click.argument("path")
@host_option
@output_option
@pass_app
def versions(app: App, path: str, host: str | None, fmt: str) -> None:
    """List every version of PATH across jobs and tapes, newest first (deletions too).

    \b
    Example:
        pytp versions /home/alice/report.odt
    """
    from pytp.catalog.errors import NotFound
    from pytp.catalog.search_query import search_rows

    target = os.fsencode(os.path.normpath(os.path.abspath(path)))
    with search_reader(app, None) as (reader, _):
        hits = search_rows(reader, under=target, all_versions=True, include_deleted=True, host=chosen_host(host))
        found = [hit_row(h) for h in hits if h.path_bytes == target]
    if not found:
        raise NotFound(f"The catalog has no version of {os.fsdecode(target)}.")
    columns = None if fmt != "table" else ["type", "size", "mtime", "xxh3", "host", "job", "level", "tape", "tape_file"]
    emit(found, fmt, columns)


@click.command(name="ls-catalog")
@click.argument("path", default="/")
@click.option("--as-of", "as_of", help="The directory as it was at JOB_ID or a date.")
@click.option("--include-deleted", is_flag=True, help="Also files a later backup recorded as deleted.")
@host_option
@output_option
@pass_app
def ls_catalog(app: App, path: str, as_of: str | None, include_deleted: bool, host: str | None, fmt: str) -> None:
    """List a directory as the catalog knows it (newest versions, or --as-of).

    Files a later backup recorded as deleted are not listed unless
    --include-deleted (then the deleted_by column names the job that saw them gone).

    \b
    Examples:
        pytp ls-catalog /home/alice
        pytp ls-catalog /home/alice --as-of 12
    """
    from pytp.catalog.errors import NotFound
    from pytp.catalog.search_query import search_rows

    target = os.fsencode(os.path.normpath(os.path.abspath(path)))
    prefix = target.rstrip(b"/") + b"/"
    children, itself = [], False
    with search_reader(app, as_of) as (reader, roots):
        # Streamed: only the directory's own children are kept, not the whole tree below it.
        hits = search_rows(reader, under=target, roots=roots, include_deleted=include_deleted, host=chosen_host(host))
        for h in hits:
            name = h.path_bytes
            if name.startswith(prefix) and b"/" not in name[len(prefix) :]:
                children.append(hit_row(h))
            elif name == target:
                itself = True
    if not children and not itself:
        raise NotFound(f"The catalog knows nothing under {path}" + (f" as of {as_of}." if as_of else "."))
    columns = None if fmt != "table" else ["path", "type", "mode", "size", "mtime", "host", "job", "tape"]
    if columns and include_deleted:
        columns.append("deleted_by")
    emit(children, fmt, columns, empty="(empty directory)")


COMMANDS = [versions, ls_catalog]
