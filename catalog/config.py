"""pytp's configuration: where it is found, what it says, the embedded default.

The original ``configs/config.json`` format keeps working unchanged
(``tar_dir``, ``snapshot_dir``, ``tape_drives[]``, ``tape_libraries[]``); pytp
adds ``catalog``, ``pools``, ``default_pool``, ``buffer`` and a ``type`` for
drives and libraries (``st``/``mtx`` by default, ``virtual`` for the
file-backed library).  This module imports neither the database nor click, so
tape commands that need no catalog stay quick to start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_BLOCK_SIZE = 524288  # the original pytp's LTO setting (512 KiB)
DEFAULT_POOL = "default"
DEFAULT_LIBRARY_NAME = "vlib"
GIB = 1 << 30


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "pytp"


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "pytp"


@dataclass(frozen=True)
class DriveConfig:
    name: str
    device_path: str
    block_size: int = DEFAULT_BLOCK_SIZE
    type: str = "st"


@dataclass(frozen=True)
class LibraryConfig:
    name: str
    device_path: str
    slots: int | None = None
    #: drive names in the changer's order: drives[0] is data transfer element 0.
    drives: tuple[str, ...] = ()
    type: str = "mtx"


@dataclass(frozen=True)
class PoolConfig:
    name: str
    retention_days: int | None = None
    #: cartridges whose barcode starts with this belong to the pool
    label_prefix: str | None = None
    #: and/or these barcodes, listed one by one
    barcodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BufferConfig:
    #: ``--memory_buffer`` in GiB, as in the original pytp.
    memory_gib: float = 0.25
    #: ``--memory_buffer_percent``: start writing once the buffer is this full.
    start_percent: int = 20
    #: ``--low-water-mark``: kept for compatibility; reported in the job summary.
    low_water_mark: int = 10


@dataclass(frozen=True)
class PlanningConfig:
    """What a restore plan assumes to estimate its time (``restore_planning``)."""

    #: streaming read speed of the drive
    drive_mb_per_s: float = 300.0
    #: one changer load: move, thread, calibrate, read the label
    load_seconds: float = 90.0
    #: one positioning (space over filemarks or blocks)
    seek_seconds: float = 30.0


@dataclass(frozen=True)
class Config:
    """The effective configuration.

    :param path: the file it was read from.
    :param source: how that file was found (``--config``, ``$PYTP_CONFIG``, ...).
    """

    path: Path
    source: str
    catalog_url: str
    tar_dir: str | None = None
    snapshot_dir: str | None = None
    drives: tuple[DriveConfig, ...] = ()
    libraries: tuple[LibraryConfig, ...] = ()
    pools: tuple[PoolConfig, ...] = (PoolConfig(DEFAULT_POOL),)
    default_pool: str = DEFAULT_POOL
    buffer: BufferConfig = field(default_factory=BufferConfig)
    planning: PlanningConfig = field(default_factory=PlanningConfig)
    created: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    def drive(self, name: str) -> DriveConfig:
        for drive in self.drives:
            if drive.name == name:
                return drive
        known = ", ".join(d.name for d in self.drives) or "none"
        raise ConfigError(f"Unknown drive '{name}' (configured: {known}). Check --drive or PYTP_DEV.")

    def library(self, name: str) -> LibraryConfig:
        for library in self.libraries:
            if library.name == name:
                return library
        known = ", ".join(lib.name for lib in self.libraries) or "none"
        raise ConfigError(f"Unknown library '{name}' (configured: {known}). Check --library or PYTP_LIB.")

    def pool(self, name: str) -> PoolConfig:
        for pool in self.pools:
            if pool.name == name:
                return pool
        known = ", ".join(p.name for p in self.pools)
        raise ConfigError(f"Unknown pool '{name}' (configured: {known}).")

    def library_of(self, drive_name: str) -> tuple[LibraryConfig, int] | None:
        """The library a drive sits in and its element number there, if any."""
        for library in self.libraries:
            if drive_name in library.drives:
                return library, library.drives.index(drive_name)
        return None


def _resolve(base: Path, value: str) -> str:
    """Paths in a config file are relative to the file (device paths under /dev stay)."""
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_config(data: dict[str, Any], path: Path, source: str) -> Config:
    """Build a ``Config`` from the JSON object of a config file.

    :raises ConfigError: a key has the wrong type or a required key is missing.
    """
    base = path.parent
    try:
        drives = tuple(
            DriveConfig(
                name=str(d["name"]),
                device_path=_resolve(base, str(d["device_path"])),
                block_size=int(d.get("block_size", DEFAULT_BLOCK_SIZE)),
                type=str(d.get("type", "st")),
            )
            for d in data.get("tape_drives", [])
        )
        libraries = tuple(
            LibraryConfig(
                name=str(lib["name"]),
                device_path=_resolve(base, str(lib["device_path"])),
                slots=int(lib["slots"]) if lib.get("slots") is not None else None,
                drives=tuple(str(name) for name in lib.get("drives", [])),
                type=str(lib.get("type", "mtx")),
            )
            for lib in data.get("tape_libraries", [])
        )
        pools = tuple(
            PoolConfig(
                name=str(p["name"]),
                retention_days=int(p["retention_days"]) if p.get("retention_days") is not None else None,
                label_prefix=p.get("label_prefix"),
                barcodes=tuple(str(b) for b in p.get("barcodes", [])),
            )
            for p in data.get("pools", [{"name": DEFAULT_POOL}])
        )
        buffer_raw = data.get("buffer", {})
        buffer = BufferConfig(
            memory_gib=float(buffer_raw.get("memory_buffer", BufferConfig.memory_gib)),
            start_percent=int(buffer_raw.get("memory_buffer_percent", BufferConfig.start_percent)),
            low_water_mark=int(buffer_raw.get("low_water_mark", BufferConfig.low_water_mark)),
        )
        planning_raw = data.get("restore_planning", {})
        planning = PlanningConfig(
            drive_mb_per_s=float(planning_raw.get("drive_mb_per_s", PlanningConfig.drive_mb_per_s)),
            load_seconds=float(planning_raw.get("load_seconds", PlanningConfig.load_seconds)),
            seek_seconds=float(planning_raw.get("seek_seconds", PlanningConfig.seek_seconds)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"Configuration {path} is invalid: {err!r} in tape_drives/tape_libraries/pools.") from err
    for drive in drives:
        if drive.type not in ("st", "virtual"):
            raise ConfigError(f"Drive '{drive.name}' in {path}: type must be 'st' or 'virtual', not '{drive.type}'.")
        if drive.block_size <= 0 or drive.block_size % 512:
            raise ConfigError(
                f"Drive '{drive.name}' in {path}: block_size {drive.block_size} must be a positive "
                "multiple of 512 (tar records)."
            )
    names = {d.name for d in drives}
    for library in libraries:
        if library.type not in ("mtx", "virtual"):
            raise ConfigError(f"Library '{library.name}' in {path}: type must be 'mtx' or 'virtual'.")
        missing = [n for n in library.drives if n not in names]
        if missing:
            raise ConfigError(
                f"Library '{library.name}' in {path} names drives that are not in tape_drives: {', '.join(missing)}."
            )
    catalog = data.get("catalog", {})
    url = catalog.get("url") if isinstance(catalog, dict) else None
    if not url:
        url = f"sqlite:///{data_home() / 'catalog.db'}"
    elif url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + _resolve(base, url[len("sqlite:///") :])
    default_pool = str(data.get("default_pool", pools[0].name if pools else DEFAULT_POOL))
    if pools and default_pool not in {p.name for p in pools}:
        raise ConfigError(f"default_pool '{default_pool}' in {path} is not one of the pools.")
    return Config(
        path=path,
        source=source,
        catalog_url=url,
        tar_dir=data.get("tar_dir"),
        snapshot_dir=data.get("snapshot_dir"),
        drives=drives,
        libraries=libraries,
        pools=pools,
        default_pool=default_pool,
        buffer=buffer,
        planning=planning,
        raw=data,
    )


def read_config(path: Path, source: str) -> Config:
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise ConfigError(f"Configuration file {path} ({source}) does not exist.") from err
    except OSError as err:
        raise ConfigError(f"Cannot read configuration {path}: {err.strerror}.") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"Configuration {path} is not valid JSON: {err}.") from err
    if not isinstance(data, dict):
        raise ConfigError(f"Configuration {path} must hold a JSON object.")
    return parse_config(data, path, source)


def embedded_default(data_dir: Path) -> dict[str, Any]:
    """The configuration of the embedded default: a virtual library and SQLite."""
    library_dir = data_dir / "libraries" / DEFAULT_LIBRARY_NAME
    return {
        "tar_dir": str(data_dir / "tars"),
        "snapshot_dir": str(data_dir / "snapshots"),
        "catalog": {"url": f"sqlite:///{data_dir / 'catalog.db'}"},
        "default_pool": DEFAULT_POOL,
        "pools": [{"name": DEFAULT_POOL, "retention_days": 30}],
        "tape_drives": [
            {
                "name": f"{DEFAULT_LIBRARY_NAME}-drive{i}",
                "device_path": str(library_dir / "drives" / str(i)),
                "block_size": DEFAULT_BLOCK_SIZE,
                "type": "virtual",
            }
            for i in range(2)
        ],
        "tape_libraries": [
            {
                "name": DEFAULT_LIBRARY_NAME,
                "device_path": str(library_dir),
                "slots": 8,
                "drives": [f"{DEFAULT_LIBRARY_NAME}-drive{i}" for i in range(2)],
                "type": "virtual",
            }
        ],
    }


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a crash never leaves half a config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=4) + "\n")
    os.replace(tmp, path)


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find and read the configuration; create the embedded default if there is none.

    Lookup order: ``explicit`` (``--config``), ``$PYTP_CONFIG``, then
    ``$XDG_CONFIG_HOME/pytp/config.json``.  Only the last one is ever created.
    """
    if explicit:
        return read_config(Path(explicit), "--config")
    env = os.environ.get("PYTP_CONFIG")
    if env:
        return read_config(Path(env), "$PYTP_CONFIG")
    user = config_home() / "config.json"
    if user.exists():
        return read_config(user, "user configuration")
    from pytp.tapeio.virtual_changer import create_virtual_library

    data_dir = data_home()
    data = embedded_default(data_dir)
    library = data["tape_libraries"][0]
    if not Path(library["device_path"], "library.json").exists():
        create_virtual_library(
            Path(library["device_path"]), DEFAULT_LIBRARY_NAME, drives=2, slots=8, tapes=8, tape_size=4 * GIB
        )
    write_config(user, data)
    config = read_config(user, "user configuration")
    return Config(**{**config.__dict__, "created": True})


def add_library(config: Config, library: dict[str, Any], drives: list[dict[str, Any]]) -> None:
    """Append a library and its drives to the configuration file on disk."""
    data = json.loads(config.path.read_text())
    if any(lib.get("name") == library["name"] for lib in data.get("tape_libraries", [])):
        raise ConfigError(f"A library named '{library['name']}' already exists in {config.path}.")
    taken = {d.get("name") for d in data.get("tape_drives", [])} & {d["name"] for d in drives}
    if taken:
        raise ConfigError(f"Drive names already in use in {config.path}: {', '.join(sorted(taken))}.")
    data.setdefault("tape_drives", []).extend(drives)
    data.setdefault("tape_libraries", []).append(library)
    write_config(config.path, data)
