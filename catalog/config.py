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
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytp.tapeio.atomicfile import write_atomically

from .config_schema import Checker, reject_duplicate_keys
from .errors import ConfigError
from .notify import NotifyConfig

#: ``scheme://user:password@`` in a database URL
_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^/@:]*):[^@/]*@")


def hide_password(url: str) -> str:
    """``url`` with its password as ``***`` (as SQLAlchemy renders it), for what is printed,
    without importing SQLAlchemy (``pytp config`` does not)."""
    return _PASSWORD.sub(r"\1:***@", url)

DEFAULT_BLOCK_SIZE = 524288  # the original pytp's LTO setting (512 KiB)
#: every block is held in memory several times over; LTO drives take at most 8 MiB
MAX_BLOCK_SIZE = 64 << 20
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
    #: the serial number the library shows for this drive's element: the
    #: device is then found by serial (``drive_matching``), whatever st node it got
    serial: str | None = None


@dataclass(frozen=True)
class LibraryConfig:
    name: str
    device_path: str
    slots: int | None = None
    #: drive names in the changer's order: drives[0] is data transfer element 0.
    drives: tuple[str, ...] = ()
    type: str = "mtx"
    #: seconds one mtx command may take (``timeouts.changer_move_seconds``)
    move_timeout: float = 900.0


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
    # ``low_water_mark`` (``-lwm``, mbuffer's low watermark in the original
    # pytp) is accepted in the file for compatibility and ignored.


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
class TimeoutsConfig:
    """How long pytp waits for a library's robot and a drive (``timeouts``, issue 11).

    The defaults are what real libraries need, not what the virtual one does.
    """

    #: one ``mtx`` command (a load, unload or transfer; a status with inventory):
    #: a large library's robot may first scan or wait for another move
    changer_move_seconds: float = 900.0
    #: after a load, until the drive is ready: a new LTO-9 cartridge's first
    #: load calibrates for up to two hours (``tapeio.ready.DRIVE_READY_SECONDS``)
    drive_ready_seconds: float = 2 * 3600 + 10 * 60


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
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    #: uses a cleaning cartridge is good for (``cleaning.max_uses``; LTO universal cartridges: 50)
    cleaning_max_uses: int = 50
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
        raise ConfigError(
            f"Unknown library '{name}' (configured: {known}). Check -l/--library or PYTP_LIB "
            "(the original pytp's -l LABEL is --label now)."
        )

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


def _one_drive_per_device(check: Checker, drives: list[DriveConfig]) -> None:
    """Refuse two drives on one device: each would take the other's tape (and lock) as its own."""
    seen: dict[str, str] = {}
    for drive in drives:
        device = os.path.realpath(drive.device_path)
        if device in seen:
            raise check.fail(
                f"drives '{seen[device]}' and '{drive.name}' (tape_drives) use the same device "
                f"{drive.device_path}; each drive needs its own."
            )
        seen[device] = drive.name


def _resolve(base: Path, value: str) -> str:
    """Paths in a config file are relative to the file (device paths under /dev stay)."""
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_config(data: dict[str, Any], path: Path, source: str) -> Config:
    """Build a ``Config`` from the JSON object of a config file.

    :raises ConfigError: a key is unknown (with the closest valid key), has the
        wrong type or value, a required key is missing, or two drives,
        libraries or pools share a name.
    """
    base = path.parent
    check = Checker(path)
    check.section(data, "", "")
    drives: list[DriveConfig] = []
    for i, raw in enumerate(check.objects(data, "tape_drives")):
        where = f"tape_drives[{i}]"
        check.section(raw, "tape_drives[]", where)
        drive = DriveConfig(
            name=check.string(raw, "name", where, required=True) or "",
            device_path=_resolve(base, check.string(raw, "device_path", where, required=True) or ""),
            block_size=check.integer(raw, "block_size", where, DEFAULT_BLOCK_SIZE) or 0,
            type=check.string(raw, "type", where) or "st",
            serial=(check.string(raw, "serial", where) or "").strip() or None,
        )
        if drive.type not in ("st", "virtual"):
            raise check.fail(f"drive '{drive.name}': type must be 'st' or 'virtual', not '{drive.type}'.")
        if drive.block_size <= 0 or drive.block_size % 512:
            raise check.fail(
                f"drive '{drive.name}': block_size {drive.block_size} must be a positive multiple of 512 (tar records)."
            )
        if drive.block_size > MAX_BLOCK_SIZE:
            raise check.fail(
                f"drive '{drive.name}': block_size {drive.block_size} is above {MAX_BLOCK_SIZE} (64 MiB); "
                "no tape drive takes blocks that large (LTO: up to 8 MiB)."
            )
        drives.append(drive)
    libraries: list[LibraryConfig] = []
    for i, raw in enumerate(check.objects(data, "tape_libraries")):
        where = f"tape_libraries[{i}]"
        check.section(raw, "tape_libraries[]", where)
        library = LibraryConfig(
            name=check.string(raw, "name", where, required=True) or "",
            device_path=_resolve(base, check.string(raw, "device_path", where, required=True) or ""),
            slots=check.integer(raw, "slots", where, minimum=1),
            drives=check.strings(raw, "drives", where),
            type=check.string(raw, "type", where) or "mtx",
        )
        if library.type not in ("mtx", "virtual"):
            raise check.fail(f"library '{library.name}': type must be 'mtx' or 'virtual', not '{library.type}'.")
        libraries.append(library)
    pools: list[PoolConfig] = []
    for i, raw in enumerate(check.objects(data, "pools") if "pools" in data else [{"name": DEFAULT_POOL}]):
        where = f"pools[{i}]"
        check.section(raw, "pools[]", where)
        pools.append(
            PoolConfig(
                name=check.string(raw, "name", where, required=True) or "",
                retention_days=check.integer(raw, "retention_days", where, minimum=0),
                label_prefix=check.string(raw, "label_prefix", where),
                barcodes=check.strings(raw, "barcodes", where),
            )
        )
    check.unique([d.name for d in drives], "drives (tape_drives)")
    _one_drive_per_device(check, drives)
    check.unique([lib.name for lib in libraries], "libraries (tape_libraries)")
    check.unique([p.name for p in pools], "pools")
    buffer_raw = check.section(data.get("buffer", {}), "buffer", "buffer")
    buffer = BufferConfig(
        memory_gib=check.number(buffer_raw, "memory_buffer", "buffer", BufferConfig.memory_gib, positive=True),
        start_percent=check.integer(
            buffer_raw, "memory_buffer_percent", "buffer", BufferConfig.start_percent, minimum=0, maximum=100
        )
        or 0,
    )
    planning_raw = check.section(data.get("restore_planning", {}), "restore_planning", "restore_planning")
    planning = PlanningConfig(
        # a divisor of every time estimate: 0 would be a division by zero in `restore --plan`
        drive_mb_per_s=check.number(
            planning_raw, "drive_mb_per_s", "restore_planning", PlanningConfig.drive_mb_per_s, positive=True
        ),
        load_seconds=check.number(planning_raw, "load_seconds", "restore_planning", PlanningConfig.load_seconds),
        seek_seconds=check.number(planning_raw, "seek_seconds", "restore_planning", PlanningConfig.seek_seconds),
    )
    notify_raw = check.section(data.get("notify", {}), "notify", "notify")
    notify = NotifyConfig(
        command=check.string(notify_raw, "command", "notify") or None,
        timeout_seconds=check.number(
            notify_raw, "timeout_seconds", "notify", NotifyConfig.timeout_seconds, positive=True
        ),
    )
    timeouts_raw = check.section(data.get("timeouts", {}), "timeouts", "timeouts")
    timeouts = TimeoutsConfig(
        changer_move_seconds=check.number(
            timeouts_raw, "changer_move_seconds", "timeouts", TimeoutsConfig.changer_move_seconds, positive=True
        ),
        drive_ready_seconds=check.number(
            timeouts_raw, "drive_ready_seconds", "timeouts", TimeoutsConfig.drive_ready_seconds, positive=True
        ),
    )
    cleaning_raw = check.section(data.get("cleaning", {}), "cleaning", "cleaning")
    cleaning_max_uses = check.integer(cleaning_raw, "max_uses", "cleaning", Config.cleaning_max_uses, minimum=1)
    libraries = [replace(library, move_timeout=timeouts.changer_move_seconds) for library in libraries]
    names = {d.name for d in drives}
    for library in libraries:
        missing = [n for n in library.drives if n not in names]
        if missing:
            raise check.fail(
                f"library '{library.name}' names drives that are not in tape_drives: {', '.join(missing)}."
            )
    catalog = check.section(data.get("catalog", {}), "catalog", "catalog")
    url = check.string(catalog, "url", "catalog")
    if not url:
        url = f"sqlite:///{data_home() / 'catalog.db'}"
    elif url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + _resolve(base, url[len("sqlite:///") :])
    default_pool = check.string(data, "default_pool", "") or (pools[0].name if pools else DEFAULT_POOL)
    if pools and default_pool not in {p.name for p in pools}:
        raise check.fail(f"default_pool '{default_pool}' is not one of the pools ({', '.join(p.name for p in pools)}).")
    return Config(
        path=path,
        source=source,
        catalog_url=url,
        tar_dir=check.string(data, "tar_dir", ""),
        snapshot_dir=check.string(data, "snapshot_dir", ""),
        drives=tuple(drives),
        libraries=tuple(libraries),
        pools=tuple(pools),
        default_pool=default_pool,
        buffer=buffer,
        planning=planning,
        notify=notify,
        timeouts=timeouts,
        cleaning_max_uses=cleaning_max_uses or Config.cleaning_max_uses,
        raw=data,
    )


def read_config(path: Path, source: str) -> Config:
    """Read and check the configuration file at ``path``.

    :param source: how the file was found, for messages (``--config``, ...).
    :raises ConfigError: the file is missing, unreadable, not UTF-8, not JSON, or wrong.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(f"Configuration file {path} ({source}) does not exist.") from err
    except OSError as err:
        raise ConfigError(f"Cannot read configuration {path}: {err.strerror}.") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"Configuration {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8."
        ) from err
    try:
        data = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except ValueError as err:  # JSONDecodeError, or a key given twice
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
    """Write ``data`` atomically: a crash or a power cut leaves the old file or the new one.

    The temporary name is per process, so two first uses creating the embedded
    default at once cannot rename each other's file away; the data reaches the
    disk before the rename, or a power cut could leave an empty config.json.

    :raises ConfigError: the file cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(data, indent=4) + "\n")
    except OSError as err:
        raise ConfigError(f"Cannot write the configuration {path}: {err.strerror}.") from err


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
    from pytp.tapeio.virtual_changer import create_virtual_library, derive_barcode_prefix

    data_dir = data_home()
    data = embedded_default(data_dir)
    library = data["tape_libraries"][0]
    if not Path(library["device_path"], "library.json").exists():
        path = Path(library["device_path"])
        # Barcodes unique to this host and library, not PYT001L9 everywhere: hosts may share a catalog.
        prefix = derive_barcode_prefix(DEFAULT_LIBRARY_NAME, path)
        create_virtual_library(
            path, DEFAULT_LIBRARY_NAME, drives=2, slots=8, tapes=8, tape_size=4 * GIB, barcode_prefix=prefix
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
