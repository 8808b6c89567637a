"""`pytp config`: the effective configuration and where it came from."""

from __future__ import annotations

import json

import click

from pytp.catalog.config import hide_password

from .app import App, emit, pass_app, warn


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: the effective settings and where they came from; json: the configuration file's JSON.",
)
# The spelling of pytp 0.1; every other command says --format json.
@click.option("--json", "as_json", is_flag=True, hidden=True, help="Deprecated: use --format json.")
@pass_app
def config(app: App, fmt: str, as_json: bool) -> None:
    """Show the effective configuration and where it came from.

    \b
    Example:
        pytp config
        pytp config --format json
    """
    if as_json:
        warn("--json is deprecated: use --format json.")
        fmt = "json"
    cfg = app.config
    if fmt == "json":
        raw = cfg.raw
        url = raw.get("catalog", {}).get("url") if isinstance(raw.get("catalog"), dict) else None
        if isinstance(url, str):  # what is printed gets pasted into tickets: never the password
            raw = {**raw, "catalog": {**raw["catalog"], "url": hide_password(url)}}
        click.echo(json.dumps(raw, indent=4))
        return
    click.echo(f"Configuration: {cfg.path} ({cfg.source})")
    click.echo(f"Catalog: {hide_password(cfg.catalog_url)}")
    click.echo(f"Default pool: {cfg.default_pool}")
    click.echo(f"tar_dir: {cfg.tar_dir or '-'}   snapshot_dir: {cfg.snapshot_dir or '-'}")
    click.echo("\nDrives:")
    emit(
        [
            {"name": d.name, "type": d.type, "device_path": d.device_path, "block_size": d.block_size}
            for d in cfg.drives
        ],
        "table",
        empty="  (none)",
    )
    click.echo("\nLibraries:")
    emit(
        [
            {
                "name": lib.name,
                "type": lib.type,
                "device_path": lib.device_path,
                "slots": lib.slots,
                "drives": list(lib.drives),
            }
            for lib in cfg.libraries
        ],
        "table",
        empty="  (none)",
    )
    click.echo("\nPools:")
    emit(
        [{"name": p.name, "retention_days": p.retention_days, "label_prefix": p.label_prefix} for p in cfg.pools],
        "table",
    )


COMMANDS = [config]
