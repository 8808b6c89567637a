"""`pytp report --html FILE`: the library, pools, jobs and problems on one HTML page."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pytp.tapeio.atomicfile import write_atomically

from .app import App, pass_app


@click.command()
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the page to this file ('-': standard output).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=30,
    show_default=True,
    help="Days (today included) of the job chart and the problem list.",
)
@click.option(
    "--scrub-age",
    "scrub_age",
    type=click.IntRange(0),
    default=180,
    show_default=True,
    help="A tape last verified more than this many days ago (or never) is due for a scrub.",
)
@pass_app
def report(app: App, html_file: str, days: int, scrub_age: int) -> None:
    """Write a self-contained HTML report: library, pools, jobs per day, tapes due, problems.

    The page loads nothing from the network (inline CSS and SVG, no script),
    so it can be mailed or published as it is.  Times are ISO 8601 with the
    zone; days are counted in this machine's time zone.

    \b
    Examples:
        pytp report --html /var/www/html/tapes.html
        pytp report --html - --days 7 | mail -a 'Content-Type: text/html' -s 'pytp' root
    """
    from sqlmodel import Session

    from pytp.catalog.report import collect_report

    from .report_html import render_report

    with Session(app.engine) as session:
        data = collect_report(session, app.config, days=days, scrub_age_days=scrub_age)
    page = render_report(data)
    if html_file == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
        return
    write_atomically(Path(html_file), page)
    click.echo(
        f"Wrote {html_file}: {data.tapes} tape(s), {data.jobs} job(s) in {days} day(s), "
        f"{len(data.problems)} problem(s).",
        err=True,
    )


COMMANDS = [report]
