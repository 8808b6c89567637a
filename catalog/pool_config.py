"""``pytp pools create|edit``: pools changed in the configuration file.

The file is read as JSON, changed, checked by the same parser (and its
unknown-key validation) that reads it at start-up, then written atomically
(``config.write_config``): a pool the parser would refuse never reaches the file.
"""

from __future__ import annotations

import json
from typing import Any

from .config import Config, parse_config, write_config
from .errors import ConfigError


def _read(config: Config) -> dict[str, Any]:
    try:
        data = json.loads(config.path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"Cannot read the configuration {config.path}: {err}.") from err
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration {config.path} must hold a JSON object.")
    return data


def _save(config: Config, data: dict[str, Any]) -> None:
    parse_config(data, config.path, config.source)  # refuses what start-up would refuse
    write_config(config.path, data)


def _settings(retention_days: int | None, label_prefix: str | None) -> dict[str, Any]:
    if retention_days is not None and retention_days < 0:
        raise ConfigError(f"--retention-days must be 0 or more, not {retention_days}.")
    settings: dict[str, Any] = {}
    if retention_days is not None:
        settings["retention_days"] = retention_days
    if label_prefix is not None:
        settings["label_prefix"] = label_prefix
    return settings


def create_pool(config: Config, name: str, retention_days: int, label_prefix: str | None = None) -> None:
    """Add the pool ``name`` to the configuration file.

    :raises ConfigError: a pool of that name exists, or the result is not a valid configuration.
    """
    data = _read(config)
    pools = data.setdefault("pools", [])
    if any(isinstance(p, dict) and p.get("name") == name for p in pools):
        raise ConfigError(f"A pool named '{name}' already exists in {config.path} (`pytp pools edit {name}`).")
    pools.append({"name": name, **_settings(retention_days, label_prefix)})
    _save(config, data)


def edit_pool(config: Config, name: str, *, retention_days: int | None = None, label_prefix: str | None = None) -> None:
    """Change the pool ``name`` in the configuration file; an empty ``label_prefix`` removes it.

    :raises ConfigError: no such pool, nothing to change, or an invalid result.
    """
    data = _read(config)
    pool = next((p for p in data.get("pools", []) if isinstance(p, dict) and p.get("name") == name), None)
    if pool is None:
        raise ConfigError(f"No pool named '{name}' in {config.path} (`pytp pools` lists them).")
    settings = _settings(retention_days, label_prefix)
    if not settings:
        raise ConfigError("Nothing to change: give --retention-days or --label-prefix.")
    pool.update(settings)
    if pool.get("label_prefix") == "":
        del pool["label_prefix"]
    _save(config, data)
