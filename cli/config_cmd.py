"""`pytp config`: the effective configuration and where it came from."""

from __future__ import annotations

import json

import click

from .app import App, emit, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the configuration file's JSON.")
@pass_app
def config(app: App, as_json: bool) -> None:
    """Show the effective configuration and where it came from.

    \b
    Example:
        pytp config
    """
    cfg = app.config
    if as_json:
        click.echo(json.dumps(cfg.raw, indent=4))
        return
    click.echo(f"Configuration: {cfg.path} ({cfg.source})")
    click.echo(f"Catalog: {cfg.catalog_url}")
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
