"""The crash harness: pytp killed (SIGKILL) at random moments, then the promises checked.

A backup, a catalog rebuild, a label and a restore run as separate processes
(forked from the test with pytp imported, to save the interpreter start-up)
on one library (512 KiB blocks, two drives) and are killed at a random moment:
during start-up, while choosing a drive or loading a tape, while writing data,
a filemark or a manifest, or while committing to the catalog.  The moment is
drawn from a seeded generator and printed, so a failing run can be replayed
(``PYTP_CRASH_SEED``).  After every kill:

* the catalog opens, and after reconciliation no job is ``running``;
* every job that became ``ok`` passes ``pytp verify`` and restores identical;
* the next backup appends at the tape's end of data (after the last tape
  file, good or cut, never over it), succeeds, verifies and restores, and the
  tape then holds as many files as the catalog says.

The runs share one library and catalog, so damage left by one run would show
in the next ones.  ``PYTP_CRASH_RUNS`` sets the number of runs (default 30,
about 30 s on an idle machine; the long mode is e.g. ``PYTP_CRASH_RUNS=500``).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio.virtual_changer import VirtualChanger, add_tape
from tests.conftest import write_library_config
from tests.crash.victim import Victim

RUNS = int(os.environ.get("PYTP_CRASH_RUNS", "30"))
SEED = int(os.environ.get("PYTP_CRASH_SEED", "20261202"))
KINDS = ("backup", "rebuild", "label", "restore")
BLOCK = 512 << 10
#: label runs use up blank cartridges (a label killed after reaching tape strands one)
SLOTS = max(40, RUNS)
#: how long after its start each kind of victim is killed at the latest (seconds):
#: about its whole run on an idle machine, so kills spread over all of it
SPAN = {"backup": 0.35, "rebuild": 0.35, "label": 0.25, "restore": 0.35}


@dataclass
class Site:
    root: Path
    config: Path
    library: Path
    sources: dict[int, Path] = field(default_factory=dict)  # ok job id -> its source
    checked: set[int] = field(default_factory=set)  # ok jobs verified and restored
    pending: dict[str, Path] = field(default_factory=dict)  # source of a victim backup, by run
    next_barcode: int = 1

    def run(self, *args: str, expect: int | None = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(self.config), *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (args, result.output)
        return result

    def jobs(self) -> list[dict]:
        return json.loads(self.run("jobs", "--format", "json").stdout)

    def tape_dir(self, label: str) -> Path:
        return self.library / "tapes" / label

    def files_on_tape(self, label: str) -> int:
        return len(list(self.tape_dir(label).glob("file-*")))


def make_source(root: Path, rng: random.Random) -> Path:
    """A small tree whose content is fixed by ``rng``: some files, one bigger one, a link."""
    shutil.rmtree(root, ignore_errors=True)  # left by a run that failed before its backup
    root.mkdir(parents=True)
    for i in range(rng.randint(3, 25)):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.dat").write_bytes(rng.randbytes(rng.randint(0, 150_000)))
    (root / "big.bin").write_bytes(rng.randbytes(rng.randint(1, 3) << 20))
    (root / "link").symlink_to("d0")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("crash")
    config = write_library_config(
        root / "site", f"sqlite:///{root / 'catalog.db'}", tapes=3, slots=SLOTS, tape_size=1 << 30, block_size=BLOCK
    )
    return Site(root, config, root / "site" / "lib")


@pytest.fixture(autouse=True)
def shared_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One data home for every run, so the drive locks of victims and checks are the same files."""
    home = Path(str(tmp_path_factory.getbasetemp())) / "crash-home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))


def _blank_barcode(site: Site) -> str:
    """A blank cartridge in the library for a label run, added if none is left."""
    known = {t["barcode"] for t in json.loads(site.run("tapes", "--format", "json").stdout)}
    status = VirtualChanger(site.library).status()
    for slot in status.slots:
        if slot.full and slot.barcode and slot.barcode not in known and not site.files_on_tape(slot.barcode):
            return slot.barcode
    empty = next(s.number for s in status.slots if not s.full and not s.import_export)
    barcode = f"CR{site.next_barcode:04d}L9"
    site.next_barcode += 1
    add_tape(site.library, barcode, empty)
    return barcode


def _victim_args(site: Site, kind: str, run: int, rng: random.Random) -> list[str]:
    if kind == "backup":
        source = make_source(site.root / "sources" / f"run{run}", rng)
        site.pending[str(run)] = source
        return ["backup", "--progress", "--job", f"run{run}", str(source)]
    if kind == "label":
        return ["label", "--barcode", _blank_barcode(site)]
    good = sorted(site.sources)
    if kind == "restore":
        return ["restore", str(site.root / "restores" / f"run{run}"), "--job", str(rng.choice(good))]
    tapes = [t["label"] for t in json.loads(site.run("tapes", "--format", "json").stdout) if t["jobs"]]
    return ["catalog", "rebuild", "--tape", rng.choice(sorted(tapes))]


def _kill(victim: Victim, kind: str, rng: random.Random) -> str:
    """Kill the victim at a random moment; say when, for the report."""
    if kind == "backup" and rng.random() < 0.5:
        # Half the backups are killed while their data streams: after their
        # first progress line, within the time the rest takes.
        delay = rng.uniform(0, 0.2)
        if not victim.wait_for_progress():
            return "ended before its first progress line"
        moment = f"{delay:.3f} s after its first progress line"
    else:
        delay = rng.uniform(0, SPAN[kind])
        moment = f"{delay:.3f} s after start"
    time.sleep(delay)  # the moment is random by design; nothing asserts on time
    victim.signal(signal.SIGKILL)
    return moment


def _check_new_ok_jobs(site: Site, run: int) -> None:
    """Every job that became ok since the last check restores identical.

    A restore checks each file's xxh3 against the catalog as ``verify`` does;
    ``verify`` itself reads every tape once at the end (``test_every_ok_job_verifies``).
    """
    for job in site.jobs():
        if job["status"] != "ok" or job["id"] in site.checked:
            continue
        name = job["name"] or ""
        source = site.sources.get(job["id"]) or site.pending.get(name.removeprefix("run"))
        assert source is not None, f"job {job['id']} ({name}) is ok but no source is known for it"
        site.sources[job["id"]] = source
        out = site.root / "checks" / f"run{run}-job{job['id']}"
        site.run("restore", str(out), "--job", str(job["id"]))
        diff = subprocess.run(
            ["diff", "-r", "--no-dereference", str(source), str(out / str(source).lstrip("/"))],
            capture_output=True,
            text=True,
        )
        assert diff.returncode == 0, f"job {job['id']} restores differently:\n{diff.stdout[:2000]}"
        site.checked.add(job["id"])


def _next_backup(site: Site, run: int, rng: random.Random) -> None:
    """The next backup appends at end of data and succeeds; its tape then agrees with the catalog."""
    source = make_source(site.root / "sources" / f"after{run}", rng)
    before = {t: site.files_on_tape(t) for t in (p.name for p in (site.library / "tapes").iterdir())}
    result = site.run("backup", "--job", f"after{run}", str(source))
    match = re.search(r"^Job (\d+) ok", result.stdout, re.M)
    assert match, result.output
    site.sources[int(match.group(1))] = source
    tape, number = re.search(r"^  (\S+) file (\d+): ", result.stdout, re.M).groups()  # type: ignore[union-attr]
    assert int(number) == max(before[tape], 1), f"appended at file {number}, the tape held {before[tape]} files"
    catalog = {t["label"]: t for t in json.loads(site.run("tapes", "--format", "json").stdout)}
    assert catalog[tape]["tape_files"] == site.files_on_tape(tape)


def _seed(run: int) -> int:
    return SEED * 1000 + run


@pytest.mark.parametrize("run", range(RUNS), ids=lambda r: f"{KINDS[r % len(KINDS)]}-{r}-seed{_seed(r)}")
def test_kill_at_a_random_moment(site: Site, run: int) -> None:
    kind = KINDS[run % len(KINDS)]
    rng = random.Random(_seed(run))
    if not site.sources:  # restore and rebuild need a good job: the first runs make one
        _next_backup(site, -1, random.Random(SEED))
    args = _victim_args(site, kind, run, rng)
    victim = Victim("--config", str(site.config), *args, fork=True)
    moment = _kill(victim, kind, rng)
    code, _, stderr = victim.finish()
    print(f"run {run} (seed {_seed(run)}): pytp {' '.join(args)} killed {moment}: exit {code}")
    assert code in (0, -signal.SIGKILL), stderr  # finished, or killed; never failed on its own

    # The catalog opens; the command that opens it closes the killed job.
    jobs = site.jobs()
    assert [j["id"] for j in jobs if j["status"] == "running"] == []
    _check_new_ok_jobs(site, run)
    _next_backup(site, run, rng)
    _check_new_ok_jobs(site, run)


def test_every_ok_job_verifies(site: Site) -> None:
    """After all the kills, ``pytp verify`` passes for every tape holding good jobs."""
    tapes = [t["label"] for t in json.loads(site.run("tapes", "--format", "json").stdout) if t["jobs"]]
    assert tapes
    for tape in tapes:
        assert "FAILED" not in site.run("verify", "--tape", tape).stdout
    for job in site.jobs():
        assert job["status"] in ("ok", "failed"), job
