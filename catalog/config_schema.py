"""The keys a configuration file may hold, and typed readers that name what is wrong.

A misspelled key used to be ignored silently (``tape_drivs`` meant "no
drives"), and a value of the wrong type surfaced later as a traceback
(``catalog.url: 123``, ``tar_dir: 42``; issue 8, defect 11).  Every key is
listed here once; an unknown key is an error naming the file, where the key
sits and the closest valid key.  Every key of the original pytp's
``config.json`` (``tar_dir``, ``snapshot_dir``, ``tape_drives[]``,
``tape_libraries[]``) is in these sets, so its files keep working.

To add a configuration key, add it to the set of its section below and read it
with one of the ``*_value`` helpers in ``config.parse_config``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: the keys of each section; ``[]`` marks the objects of a list
SECTIONS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            # the original pytp's keys
            "tar_dir",
            "snapshot_dir",
            "tape_drives",
            "tape_libraries",
            # pytp's additions
            "catalog",
            "default_pool",
            "pools",
            "buffer",
            "restore_planning",
            "notify",
            "timeouts",
            "cleaning",
        }
    ),
    "tape_drives[]": frozenset({"name", "device_path", "block_size", "type", "serial"}),
    "tape_libraries[]": frozenset({"name", "device_path", "slots", "drives", "type"}),
    "catalog": frozenset({"url"}),
    "pools[]": frozenset({"name", "retention_days", "label_prefix", "barcodes"}),
    # low_water_mark: the original pytp's mbuffer setting, accepted and ignored
    "buffer": frozenset({"memory_buffer", "memory_buffer_percent", "low_water_mark"}),
    "restore_planning": frozenset({"drive_mb_per_s", "load_seconds", "seek_seconds"}),
    "notify": frozenset({"command", "timeout_seconds"}),
    "timeouts": frozenset({"changer_move_seconds", "drive_ready_seconds"}),
    "cleaning": frozenset({"max_uses"}),
}


def _where(section: str, key: str | None = None) -> str:
    """``tape_drives[1].block_size`` style names for messages."""
    if key is None:
        return section or "the top level"
    return f"{section}.{key}" if section else key


class Checker:
    """Reads values out of one configuration file, raising ``ConfigError`` with the file and key.

    :param path: the configuration file, named in every message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str) -> ConfigError:
        return ConfigError(f"Configuration {self.path}: {message}")

    def section(self, data: Any, schema: str, where: str) -> dict[str, Any]:
        """``data`` as a JSON object whose keys are all in ``SECTIONS[schema]``.

        :param where: how the object is named in messages (``tape_drives[0]``).
        """
        if not isinstance(data, dict):
            raise self.fail(f"{_where(where)} must be a JSON object, not {_json_type(data)}.")
        allowed = SECTIONS[schema]
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(allowed))}."
                raise self.fail(f"unknown key '{_where(where, key)}'; {hint}")
        return data

    def objects(self, data: dict[str, Any], key: str, where: str = "") -> list[Any]:
        """The list at ``key`` (empty if absent)."""
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{_where(where, key)} must be a list, not {_json_type(value)}.")
        return value

    def string(self, data: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"{_where(where, key)} is missing.")
            return None
        if not isinstance(value, str):
            raise self.fail(f"{_where(where, key)} must be a string, not {_json_type(value)} {value!r}.")
        if required and not value:
            raise self.fail(f"{_where(where, key)} must not be empty.")
        return value

    def strings(self, data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        values = self.objects(data, key, where)
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise self.fail(f"{_where(where, key)}[{i}] must be a string, not {_json_type(value)} {value!r}.")
        return tuple(values)

    def integer(
        self,
        data: dict[str, Any],
        key: str,
        where: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """An integer; a string of digits is accepted too, as the original pytp put values into commands."""
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{_where(where, key)} must be an integer, not {_json_type(value)} {value!r}.")
        if minimum is not None and value < minimum:
            raise self.fail(f"{_where(where, key)} must be at least {minimum}, not {value}.")
        if maximum is not None and value > maximum:
            raise self.fail(f"{_where(where, key)} must be at most {maximum}, not {value}.")
        return value

    def number(self, data: dict[str, Any], key: str, where: str, default: float, *, positive: bool = False) -> float:
        """A number; ``positive`` refuses 0 (a divisor, such as a drive speed) as well as negatives."""
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{_where(where, key)} must be a number, not {_json_type(value)} {value!r}.")
        if positive and not value > 0:
            raise self.fail(f"{_where(where, key)} must be greater than 0, not {value}.")
        if value < 0:
            raise self.fail(f"{_where(where, key)} must not be negative, not {value}.")
        return float(value)

    def unique(self, names: list[str], what: str) -> None:
        """Refuse two drives, libraries or pools of one name: lookups by name would pick either."""
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise self.fail(f"two {what} are named '{name}'; names must be unique.")
            seen.add(name)


def _json_type(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: a key given twice in one object keeps only the last value silently."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key '{key}' appears twice in one object")
        result[key] = value
    return result
