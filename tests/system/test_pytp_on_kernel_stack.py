"""pytp on the real kernel tape stack: st, sg and ch drivers against tgt, in a QEMU guest.

The scenarios of issues 3 and 4, run by pytp itself (``st`` drives, an
``mtx`` library) on ``/dev/nst0``, ``/dev/nst1`` and the changer's
``/dev/sgN``:

1. label tapes through the library; ``pytp list`` shows tgt's barcodes;
2. back up two directories (a non-UTF-8 name, a symlink) in two jobs;
   search, restore one file, restore a whole job, verify, jobs, tapes;
3. list, load, unload and move cartridges, checked against ``mtx status``;
4. end of medium: a job larger than a cartridge spans tapes of the pool,
   and restores and verifies whole;
5. emergency restore of a tape file with nothing but ``mt`` and GNU tar;
6. ``pytp catalog rebuild --all`` after the catalog file is deleted.

Python under TCG is slow (importing sqlmodel + alembic takes 15-20 s), so
one guest boot runs every command of every scenario in one Python process
(``guest_pytp.py run``); the console script itself runs once, to show the
entry point works. Each test below then checks one part of what the guest
recorded. Trees are compared on the host, byte for byte.

The SQLite catalog lives beside the job directory, not in it: the job
directory is an uncached 9p mount, which has no shared writable mmap, and
SQLite's WAL needs one ("disk I/O error" there).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .conftest import LibraryFactory

BLOCK = 65536
BLOCKING = BLOCK // 512  # tar -b counts 512-byte records
TAPE_MB = 4  # tgt sizes cartridges in MB; small ones fill quickly
BIG_FILES = (2_500_000, 2_500_000, 1_500_000)  # the spanning job: more than one cartridge

SLOT_BARCODES = {1: "PYT001L9", 2: "PYT002L9", 3: "PYT003L9", 4: "PYT004L9", 5: "PYT005L9"}
MAIL_BARCODE = "PYT009L9"
SPEC = harness.LibrarySpec(
    drives=2,
    slots=8,
    import_export=1,
    cartridges=(
        *(harness.Cartridge(b, size_mb=TAPE_MB, slot=s) for s, b in SLOT_BARCODES.items()),
        harness.Cartridge(MAIL_BARCODE, size_mb=TAPE_MB, mailslot=1),
    ),
)
IE_SLOT = SPEC.slots + 1  # mtx numbers import/export slots after the storage slots

NON_UTF8 = b"caf\xe9-latin1.txt"

# The guest: fill in the changer's node, then one Python process runs the plan;
# the console script runs once, beside it.
SCRIPT = r"""
set -u
sed "s|@CHANGER@|$PYTP_TEST_CHANGER|" "$STATE/config.in.json" > "$STATE/config.json"
export XDG_DATA_HOME="$PYTP_TEST_JOB/xdg/data" XDG_CONFIG_HOME="$PYTP_TEST_JOB/xdg/config"
step entry-point pytp exit-codes &
step driver "$PYTP_TEST_PYTHON" "$PYTP_TEST_REPO/tests/system/guest_pytp.py" run "$PLAN" "$PYTP_TEST_OUT/pytp.json"
wait
"""

# Scenario 5, as README "Emergency restore with mt and tar only" says, for the
# tape file that `pytp search` named: find the drive holding the tape (load it
# with mtx if it sits in a slot), then only mt and tar.
EMERGENCY = r"""
set -eu
F=$(grep -o '"tape_file": [0-9]*' "$PYTP_STEPS/search-two.out" | head -n 1 | grep -o '[0-9]*$')
TAPE=$(grep -o '"tape": "[^"]*"' "$PYTP_STEPS/search-two.out" | head -n 1 | cut -d'"' -f4)
read -r -a DEVS <<< "$PYTP_TEST_TAPES"
D=$(mtx -f "$PYTP_TEST_CHANGER" status | sed -n "s/^Data Transfer Element \([0-9]*\):Full.*VolumeTag *= *$TAPE *$/\1/p")
if [ -z "$D" ]; then
    S=$(mtx -f "$PYTP_TEST_CHANGER" status | sed -n "s/^ *Storage Element \([0-9]*\):Full *:VolumeTag=$TAPE *$/\1/p")
    mtx -f "$PYTP_TEST_CHANGER" load "$S" 0
    D=0
fi
T=${DEVS[$D]}
echo "tape $TAPE file $F in drive $D ($T)"
mt -f "$T" rewind
mt -f "$T" setblk __BLOCK__
mt -f "$T" fsf "$F"
mkdir -p "$PYTP_TEST_OUT/emergency"
tar -b __BLOCKING__ -xf "$T" -C "$PYTP_TEST_OUT/emergency"
""".replace("__BLOCKING__", str(BLOCKING)).replace("__BLOCK__", str(BLOCK))


def _plan() -> list[dict[str, Any]]:
    def p(name: str, *args: str) -> dict[str, Any]:
        return {"name": name, "pytp": ["--config", "${STATE}/config.json", *args]}

    def sh(name: str, script: str) -> dict[str, Any]:
        return {"name": name, "sh": script}

    mtx = 'mtx -f "$PYTP_TEST_CHANGER" status'
    out = "${PYTP_TEST_OUT}"
    return [
        # 3. the changer, with empty drives
        p("list-initial", "list", "--format", "json"),
        sh("mtx-initial", mtx),
        p("load-4", "load", "4", "-d", "drive1"),
        sh("mtx-after-load", mtx),
        p("list-after-load", "list", "--format", "json"),
        p("unload-drive1", "unload", "-d", "drive1"),
        sh("mtx-after-unload", mtx),
        p("move-ie-6", "move", str(IE_SLOT), "6"),
        p("move-5-7", "move", "5", "7"),
        sh("mtx-after-moves", mtx),
        p("list-after-moves", "list", "--format", "json"),
        p("load-empty-slot", "load", "5", "-d", "drive1"),
        # 1. labels through the library
        p("label-slot-1", "label", "--slot", "1"),
        p("label-barcode-2", "label", "--barcode", SLOT_BARCODES[2], "-d", "drive1"),
        p("unload-labelled", "unload", "-d", "drive1"),
        p("list-labelled", "list", "--format", "json"),
        p("tapes-labelled", "tapes", "--format", "json"),
        # 2. two jobs, search, restore, verify
        p("backup-one", "backup", "${SRC}/one", "--job", "one"),
        # --keep-loaded: the tape stays in drive0 for the drive commands below (a job sends it home otherwise)
        p("backup-two", "backup", "${SRC}/two", "--job", "two", "--keep-loaded"),
        p("jobs", "jobs", "--format", "json"),
        p("tapes", "tapes", "--format", "json"),
        p("search-two", "search", "${SRC}/two", "--format", "json"),
        p("search-non-utf8", "search", "caf", "--format", "json"),
        p("restore-one-file", "restore", f"{out}/one-file", "--match", "two/sub/deeper/odd size.dat"),
        p("restore-again-refused", "restore", f"{out}/one-file", "--match", "two/sub/deeper/odd size.dat"),
        p("restore-job-two", "restore", f"{out}/job-two", "--job", "2"),
        p("verify-newest", "verify"),
        p("verify-job-one", "verify", "--job", "1"),
        # the original drive commands on /dev/nst0, unchanged
        p("init", "init", "-d", "drive0"),
        p("rewind", "rewind", "-d", "drive0"),
        p("position-bot", "position", "-d", "drive0"),
        p("ff-3", "ff", "3", "-d", "drive0"),
        p("ls-file-3", "ls", "-d", "drive0"),
        p("position-after-ls", "position", "-d", "drive0"),
        p("bb-2", "bb", "2", "-d", "drive0"),
        p("goto-2", "goto", "2", "-d", "drive0"),
        p("status", "status", "-d", "drive0", "--format", "json"),
        p("rewind-again", "rewind", "-d", "drive0"),
        p("ff-3-again", "ff", "3", "-d", "drive0"),
        p("restore-here", "restore", f"{out}/here", "-d", "drive0"),
        p("retension-slot-2", "retension", "-d", "drive1", "--slot", "2", "-v"),
        sh("mtx-after-retension", mtx),
        p("config", "config"),
        # 5. mt + tar only, on the tape file search named
        sh("emergency", EMERGENCY),
        # 4. end of medium: spanning
        p("backup-big", "backup", "${SRC}/big", "--job", "big"),
        p("jobs-after-big", "jobs", "--format", "json"),
        p("tapes-after-big", "tapes", "--format", "json"),
        p("search-big", "search", "${SRC}/big", "--format", "json"),
        p("restore-job-big", "restore", f"{out}/job-big", "--job", "3"),
        p("verify-job-big", "verify", "--job", "3"),
        # 6. rebuild from the tapes alone
        p("search-all-before", "search", "${SRC}", "--format", "json"),
        p("jobs-before-rebuild", "jobs", "--format", "json"),
        sh("drop-catalog", 'rm -v "$STATE"/catalog.db*'),
        p("rebuild", "catalog", "rebuild", "--all"),
        p("search-all-after", "search", "${SRC}", "--format", "json"),
        p("jobs-after-rebuild", "jobs", "--format", "json"),
        p("restore-after-rebuild", "restore", f"{out}/after-rebuild", "--match", "one/sub/small-3.txt"),
        p("verify-newest-after-rebuild", "verify"),
        sh("mtx-final", mtx),
    ]


def _config() -> dict[str, Any]:
    return {
        "catalog": {"url": "sqlite:///catalog.db"},  # relative to the config file
        "pools": [{"name": "default"}],
        "default_pool": "default",
        "buffer": {"memory_buffer": 1 / 32},
        "tape_drives": [
            {"name": f"drive{i}", "device_path": f"/dev/nst{i}", "block_size": BLOCK, "type": "st"}
            for i in range(SPEC.drives)
        ],
        "tape_libraries": [
            {
                "name": "tgt",
                "device_path": "@CHANGER@",
                "slots": SPEC.slots,
                "drives": [f"drive{i}" for i in range(SPEC.drives)],
                "type": "mtx",
            }
        ],
    }


# --------------------------------------------------------------------------
# source trees and their digests


def _tree(root: Path, seed: int, extra: int) -> Path:
    rnd = random.Random(seed)
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "big.bin").write_bytes(rnd.randbytes(extra))
    for i in range(12):
        (root / "sub" / f"small-{i}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 3000)))
    (root / "sub" / "deeper" / "odd size.dat").write_bytes(rnd.randbytes(BLOCK + 513))
    (root / "sub" / "exactly-one-block").write_bytes(rnd.randbytes(BLOCK))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("sub/small-1.txt")
    (root / "sub" / "script.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "sub" / "script.sh").chmod(0o750)
    return root


def _sources(base: Path) -> Path:
    src = base / "src"
    _tree(src / "one", seed=1, extra=150_000)
    two = _tree(src / "two", seed=2, extra=300_000)
    os.makedirs(os.fsencode(two) + b"/dir-\xff")
    with open(os.fsencode(two) + b"/" + NON_UTF8, "wb") as f:
        f.write(b"not UTF-8 in the name, UTF-8 in here: caf\xc3\xa9\n")
    with open(os.fsencode(two) + b"/dir-\xff/inner.txt", "wb") as f:
        f.write(b"inside a directory whose name is not UTF-8\n")
    big = src / "big"
    big.mkdir()
    rnd = random.Random(3)
    for i, size in enumerate(BIG_FILES):
        (big / f"part-{i}.bin").write_bytes(rnd.randbytes(size))
    (big / "many").mkdir()
    for i in range(40):
        (big / "many" / f"f{i:02d}").write_bytes(rnd.randbytes(rnd.randint(0, 20_000)))
    return src


def digests(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Every entry under ``root`` (bytes names): content hash, link target, mode, mtime."""
    out: dict[bytes, tuple[object, ...]] = {}
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, broot)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("file", digest, stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return out


def restored(out_dir: Path, name: str, source: Path) -> Path:
    """Where pytp restores ``source`` under the target ``out_dir/name``: its absolute path made relative."""
    return out_dir / name / str(source.resolve()).lstrip("/")


# --------------------------------------------------------------------------
# the guest run


class Step:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.name: str = raw["name"]
        self.exit_code: int = raw["exit_code"]
        self.stdout: str = raw["stdout"]
        self.stderr: str = raw["stderr"]
        self.seconds: float = raw["seconds"]

    def __repr__(self) -> str:
        return (
            f"step {self.name} ({' '.join(self.raw['argv'])}) exited {self.exit_code}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
            + (f"--- traceback\n{self.raw['traceback']}" if self.raw.get("traceback") else "")
        )

    def ok(self) -> Step:
        assert self.exit_code == 0, repr(self)
        return self

    def json(self) -> Any:
        self.ok()
        return json.loads(self.stdout)


class Run:
    def __init__(self, result: harness.GuestResult, document: dict[str, Any], src: Path) -> None:
        self.result = result
        self.meta = document["meta"]
        self.steps = {s["name"]: Step(s) for s in document["steps"]}
        self.src = src.resolve()
        self.out = result.out_dir

    def step(self, name: str) -> Step:
        assert name in self.steps, f"the guest ran no step {name!r} (ran: {list(self.steps)})"
        return self.steps[name]


def run_plan(
    guest_image: harness.GuestImage,
    library: harness.TapeLibrary,
    base: Path,
    src: Path,
    config: dict[str, Any],
    steps: list[dict[str, Any]],
    title: str,
    timeout: int = 600,
) -> Run:
    """Boot the guest once and run ``steps`` with ``config`` (``SCRIPT``); what each step printed.

    Shown with -rP or on failure: the wall time and each step's time and exit code.
    """
    state = base / "state"
    state.mkdir()
    (state / "config.in.json").write_text(json.dumps(config, indent=1))
    plan = base / "plan.json"
    plan.write_text(json.dumps({"steps": steps}, indent=1))
    t0 = time.monotonic()
    result = harness.run_in_guest(
        guest_image,
        library,
        SCRIPT,
        timeout=timeout,
        env={"STATE": str(state), "PLAN": str(plan), "SRC": str(src)},
        workdir=base / "jobs",
    )
    wall = time.monotonic() - t0
    driver = result.step("driver")
    path = result.out_dir / "pytp.json"
    assert path.is_file(), f"the driver wrote no results:\n{driver.stderr[-4000:]}\n{result.describe()}"
    document = json.loads(path.read_text())
    print(f"{title}: {wall:.1f} s wall, guest timings {result.timings}")
    for s in document["steps"]:
        print(f"  {s['name']:26s} {s['seconds']:7.2f} s  rc={s['exit_code']}")
    driver.check()
    return Run(result, document, src)


@pytest.fixture(scope="module")
def run(
    guest_image: harness.GuestImage,
    module_library_factory: LibraryFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp("pytp-kernel")
    src = _sources(base)
    library = module_library_factory(SPEC)
    done = run_plan(guest_image, library, base, src, _config(), _plan(), "pytp scenarios", timeout=900)
    meta = done.meta
    print(f"  imports: cli {meta.get('import_cli_seconds')} s, catalog {meta.get('import_catalog_seconds')} s")
    entry = done.result.steps.get("entry-point")
    if entry:
        print(f"  console script `pytp exit-codes`: {entry.seconds:.2f} s (beside the driver)")
    return done


def _mtx_status(text: str) -> dict[str, Any]:
    """Drives and slots from ``mtx status``: {"drives": {i: (barcode, source)}, "slots": {n: barcode}}."""
    drives: dict[int, tuple[str | None, int | None]] = {}
    slots: dict[int, str | None] = {}
    for line in text.splitlines():
        m = re.match(r"Data Transfer Element (\d+):(Full|Empty)(?: \(Storage Element (\d+) Loaded\))?(.*)", line)
        if m:
            tag = re.search(r"VolumeTag\s*=\s*(\S+)", m.group(4))
            drives[int(m.group(1))] = (
                (tag.group(1) if tag else "?", int(m.group(3)) if m.group(3) else None)
                if m.group(2) == "Full"
                else (None, None)
            )
        m = re.match(r"\s*Storage Element (\d+)(?: IMPORT/EXPORT)?:(Full|Empty)(.*)", line)
        if m:
            tag = re.search(r"VolumeTag\s*=\s*(\S+)", m.group(3))
            slots[int(m.group(1))] = (tag.group(1) if tag else "?") if m.group(2) == "Full" else None
    return {"drives": drives, "slots": slots}


def _pytp_list(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The same shape from ``pytp list --format json``."""
    drives: dict[int, tuple[str | None, int | None]] = {}
    slots: dict[int, str | None] = {}
    for row in rows:
        kind, _, number = row["element"].rpartition(" ")
        if kind == "drive":
            drives[int(number)] = (row["barcode"], row["source_slot"]) if row["full"] else (None, None)
        else:
            slots[int(number)] = row["barcode"] if row["full"] else None
    return {"drives": drives, "slots": slots}


def _entries(rows: list[dict[str, Any]]) -> dict[str, tuple[object, ...]]:
    return {r["path"]: (r["type"], r["size"], r["xxh3"], r["tape"], r["tape_file"], r["offset"]) for r in rows}


def _only(run: Run, name: str) -> Iterator[Path]:
    for dirpath, _, filenames in os.walk(run.out / name):
        for f in filenames:
            yield Path(dirpath) / f


# --------------------------------------------------------------------------
# the console script


def test_console_script_runs_in_the_guest(run: Run) -> None:
    step = run.result.step("entry-point").check()
    assert re.search(r"^\s*7\s+tape-full\s", step.stdout, re.MULTILINE), step.stdout
    assert run.meta["pytp_file"].startswith(str(harness.repo_root())), run.meta


# --------------------------------------------------------------------------
# 3. the changer: list, load, unload, move against mtx status


def test_list_matches_mtx_status_and_tgt_barcodes(run: Run) -> None:
    listed = _pytp_list(run.step("list-initial").json())
    mtx = _mtx_status(run.step("mtx-initial").ok().stdout)
    assert listed == mtx
    expected = {n: SLOT_BARCODES.get(n) for n in range(1, SPEC.slots + 1)} | {IE_SLOT: MAIL_BARCODE}
    assert listed["slots"] == expected
    assert listed["drives"] == {0: (None, None), 1: (None, None)}


def test_load_and_unload_a_named_drive(run: Run) -> None:
    assert "Loaded slot 4 into drive drive1" in run.step("load-4").ok().stdout
    mtx = _mtx_status(run.step("mtx-after-load").ok().stdout)
    assert mtx["drives"] == {0: (None, None), 1: ("PYT004L9", 4)}
    assert mtx["slots"][4] is None
    assert _pytp_list(run.step("list-after-load").json()) == mtx
    assert "Unloaded drive drive1 into slot 4" in run.step("unload-drive1").ok().stdout
    mtx = _mtx_status(run.step("mtx-after-unload").ok().stdout)
    assert mtx["drives"] == {0: (None, None), 1: (None, None)}
    assert mtx["slots"][4] == "PYT004L9"


def test_move_between_slots_and_from_the_mail_slot(run: Run) -> None:
    run.step("move-ie-6").ok()
    run.step("move-5-7").ok()
    mtx = _mtx_status(run.step("mtx-after-moves").ok().stdout)
    assert mtx["slots"][IE_SLOT] is None and mtx["slots"][6] == MAIL_BARCODE
    assert mtx["slots"][5] is None and mtx["slots"][7] == "PYT005L9"
    assert _pytp_list(run.step("list-after-moves").json()) == mtx


def test_load_from_an_empty_slot_is_a_changer_error(run: Run) -> None:
    step = run.step("load-empty-slot")
    assert step.exit_code == 9, step  # changer
    errors = [line for line in step.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "5" in errors[0], step


# --------------------------------------------------------------------------
# 1. labels


def test_label_by_slot_and_by_barcode(run: Run) -> None:
    assert "Labelled tape PYT001L9 (barcode PYT001L9) in pool default." in run.step("label-slot-1").ok().stdout
    assert "Labelled tape PYT002L9 (barcode PYT002L9) in pool default." in run.step("label-barcode-2").ok().stdout
    run.step("unload-labelled").ok()
    listed = _pytp_list(run.step("list-labelled").json())
    assert listed["drives"] == {0: ("PYT001L9", 1), 1: (None, None)}
    assert listed["slots"][2] == "PYT002L9"
    tapes = {t["label"]: t for t in run.step("tapes-labelled").json() if t["label"]}  # not the blanks
    assert set(tapes) == {"PYT001L9", "PYT002L9"}
    assert tapes["PYT001L9"]["barcode"] == "PYT001L9" and tapes["PYT001L9"]["drive"] == "drive0"
    assert tapes["PYT002L9"]["slot"] == 2 and tapes["PYT002L9"]["tape_files"] == 1


# --------------------------------------------------------------------------
# 2. two jobs: backup, search, restore, verify, jobs, tapes


def test_two_backups_are_ok_on_the_labelled_tape(run: Run) -> None:
    for name, job in (("backup-one", 1), ("backup-two", 2)):
        out = run.step(name).ok().stdout
        assert re.search(rf"^Job {job} ok\b.* on tape PYT001L9$", out, re.MULTILINE), out
    jobs = {j["name"]: j for j in run.step("jobs").json()}
    assert set(jobs) == {"one", "two"}
    for name in ("one", "two"):
        tree = digests(run.src / name)
        files = [v for v in tree.values() if v[0] == "file"]
        assert jobs[name]["status"] == "ok"
        assert jobs[name]["tapes"] == ["PYT001L9"]
        assert jobs[name]["problems"] == 0
        assert jobs[name]["bytes"] == sum(
            os.path.getsize(os.path.join(os.fsencode(run.src / name), rel)) for rel, v in tree.items() if v[0] == "file"
        )
        assert jobs[name]["files"] == len(tree) + 1, (jobs[name], len(tree))  # + the source directory
        assert len(files) > 10


def test_tapes_inventory_after_two_jobs(run: Run) -> None:
    tapes = {t["label"]: t for t in run.step("tapes").json()}
    t1 = tapes["PYT001L9"]
    assert t1["status"] == "appendable" and t1["pool"] == "default"
    assert t1["jobs"] == 2
    assert t1["tape_files"] == 5  # label, then data + manifest per job
    assert t1["bytes_written"] > 0 and t1["bytes_written"] % BLOCK == 0
    assert t1["location"] == "tgt:drive drive0"
    assert tapes["PYT002L9"]["jobs"] == 0


def test_search_finds_every_member_of_the_second_job(run: Run) -> None:
    rows = run.step("search-two").json()
    tree = digests(run.src / "two")
    root = str(run.src / "two")
    paths = {r["path"] for r in rows}
    expected = {os.path.join(root, rel.decode("utf-8", "backslashreplace")) for rel in tree}
    assert paths == expected | {root}, sorted(paths ^ (expected | {root}))
    assert {r["job"] for r in rows} == {2}
    # One tape file holds the whole job: label 0, job 1 in 1 and 2, job 2's data in 3.
    assert {(r["tape"], r["tape_file"]) for r in rows} == {("PYT001L9", 3)}
    offsets = [r["offset"] for r in rows]
    assert len(set(offsets)) == len(offsets) and all(o % 512 == 0 for o in offsets)
    by_path = {r["path"]: r for r in rows}
    odd = by_path[os.path.join(root, "sub/deeper/odd size.dat")]
    assert odd["size"] == BLOCK + 513 and odd["type"] == "file" and len(odd["xxh3"]) == 32
    link = by_path[os.path.join(root, "link")]
    assert link["type"] == "symlink"


def test_search_shows_a_non_utf8_name(run: Run) -> None:
    rows = run.step("search-non-utf8").json()
    assert [r["path"] for r in rows] == [os.path.join(str(run.src / "two"), "caf\\xe9-latin1.txt")]


def test_restore_one_file_of_the_second_job(run: Run) -> None:
    out = run.step("restore-one-file").ok().stdout
    assert "Restored 1 item(s)" in out and "1 file checksum(s) verified" in out, out
    source = run.src / "two" / "sub" / "deeper" / "odd size.dat"
    target = restored(run.out, "one-file", source)
    assert list(_only(run, "one-file")) == [target]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()


def test_restore_refuses_to_overwrite(run: Run) -> None:
    step = run.step("restore-again-refused")
    assert step.exit_code == 12, step  # restore-refused
    assert step.stderr.startswith("Error: "), step


def test_restore_whole_second_job_is_identical(run: Run) -> None:
    out = run.step("restore-job-two").ok().stdout
    source = run.src / "two"
    tree = digests(source)
    files = sum(1 for v in tree.values() if v[0] == "file")
    assert f"Restored {len(tree) + 1} item(s)" in out and f"{files} file checksum(s) verified" in out, out
    assert digests(restored(run.out, "job-two", source)) == digests(source)


def test_verify_exits_zero(run: Run) -> None:
    newest = run.step("verify-newest").ok().stdout
    assert re.search(r"Verified job\(s\) 2 on tape PYT001L9: \d+ member\(s\) ok, .* 0 problem\(s\)", newest), newest
    first = run.step("verify-job-one").ok().stdout
    assert re.search(r"Verified job\(s\) 1 on tape PYT001L9: .* 0 problem\(s\)", first), first


def test_drive_commands_move_the_head_on_the_st_driver(run: Run) -> None:
    assert "block size 65536" in run.step("init").ok().stdout
    run.step("rewind").ok()
    assert run.step("position-bot").ok().stdout.strip() == "0"
    assert "At tape file 3." in run.step("ff-3").ok().stdout
    listing = run.step("ls-file-3").ok().stdout
    assert "two/sub/deeper/odd size.dat" in listing
    assert run.step("position-after-ls").ok().stdout.strip() == "4"  # past the filemark
    assert "At tape file 2." in run.step("bb-2").ok().stdout
    assert run.step("goto-2").ok().stdout.strip() == "2"
    status = run.step("status").json()[0]
    assert (status["file_number"], status["block_number"], status["block_size"]) == (2, 2, BLOCK)
    assert status["barcode"] == "PYT001L9" and "ONLINE" in status["flags"]


def test_restore_without_selection_extracts_the_file_under_the_head(run: Run) -> None:
    run.step("ff-3-again").ok()
    run.step("restore-here").ok()
    source = run.src / "two"
    assert digests(restored(run.out, "here", source)) == digests(source)


def test_retension_puts_the_tape_back_in_its_slot(run: Run) -> None:
    assert "returning the tape to slot 2" in run.step("retension-slot-2").ok().stdout
    mtx = _mtx_status(run.step("mtx-after-retension").ok().stdout)
    assert mtx["slots"][2] == "PYT002L9" and mtx["drives"][1] == (None, None)
    assert "Configuration:" in run.step("config").ok().stdout


# --------------------------------------------------------------------------
# 5. emergency restore with mt and tar only


def test_emergency_restore_with_mt_and_tar_only(run: Run) -> None:
    step = run.step("emergency")
    assert step.exit_code == 0, step
    assert "tape PYT001L9 file 3 in drive 0 (/dev/nst0)" in step.stdout, step
    source = run.src / "two"
    # Members are stored under their absolute path without the leading "/".
    assert digests(restored(run.out, "emergency", source)) == digests(source)


# --------------------------------------------------------------------------
# 4. end of medium: a job spans tapes


def test_big_job_spans_several_tapes_and_is_ok(run: Run) -> None:
    out = run.step("backup-big").ok().stdout
    assert re.search(r"^Job 3 ok\b", out, re.MULTILINE), out
    jobs = {j["id"]: j for j in run.step("jobs-after-big").json()}
    big = jobs[3]
    assert big["status"] == "ok" and big["problems"] == 0
    assert len(big["tapes"]) >= 2, big
    assert big["tapes"][0] == "PYT001L9", big  # started on the appendable tape in the drive
    assert big["bytes"] == sum(BIG_FILES) + sum(p.stat().st_size for p in (run.src / "big" / "many").iterdir())
    tapes = {t["label"]: t for t in run.step("tapes-after-big").json()}
    assert tapes["PYT001L9"]["status"] == "full", tapes["PYT001L9"]
    for label in big["tapes"]:
        assert tapes[label]["jobs"] >= 1
    # The backup names each part: "  TAPE file N: SOURCE (B blocks)".
    parts = re.findall(r"^\s+(\S+) file (\d+): .* \((\d+) blocks\)$", out, re.MULTILINE)
    assert len(parts) >= 2 and parts[0][0] != parts[1][0], out
    first_tape, first_file, first_blocks = parts[0][0], int(parts[0][1]), int(parts[0][2])
    rows = run.step("search-big").json()
    # At least one member does not fit in the first part: it was cut at end of medium.
    cut = [
        r
        for r in rows
        if (r["tape"], r["tape_file"]) == (first_tape, first_file) and r["offset"] + r["size"] > first_blocks * BLOCK
    ]
    assert cut, sorted((r["tape"], r["tape_file"], r["offset"], r["size"]) for r in rows)


def test_spanned_job_restores_identical(run: Run) -> None:
    """Issue 4: members cut across tapes come back whole (SPANNING RESTORE)."""
    step = run.step("restore-job-big")
    assert step.exit_code == 0, f"SPANNING RESTORE: {step!r}"
    source = run.src / "big"
    assert digests(restored(run.out, "job-big", source)) == digests(source)


def test_spanned_job_verifies(run: Run) -> None:
    """Issue 4: verify reads every part of a member cut across tapes (SPANNING VERIFY)."""
    step = run.step("verify-job-big")
    assert step.exit_code == 0, f"SPANNING VERIFY: {step!r}"
    assert re.search(r"Verified job\(s\) 3 on tape .*, .* 0 problem\(s\)", step.stdout), step


# --------------------------------------------------------------------------
# 6. catalog rebuild from the tapes


def test_catalog_file_was_deleted(run: Run) -> None:
    out = run.step("drop-catalog").ok().stdout
    assert "catalog.db" in out, out


def test_rebuild_restores_the_same_search_results(run: Run) -> None:
    before = _entries(run.step("search-all-before").json())
    out = run.step("rebuild").ok().stdout
    assert re.search(r"\b3 job\(s\) added\b", out), out
    after = _entries(run.step("search-all-after").json())
    assert len(before) > 50
    assert sorted(set(before) ^ set(after)) == []
    assert {p: v for p, v in after.items() if before[p] != v} == {}


def test_rebuild_restores_the_jobs(run: Run) -> None:
    def shape(rows: list[dict[str, Any]]) -> list[tuple[object, ...]]:
        return sorted((j["name"], j["status"], j["files"], j["bytes"], tuple(j["tapes"])) for j in rows)

    assert shape(run.step("jobs-after-rebuild").json()) == shape(run.step("jobs-before-rebuild").json())


def test_restore_after_rebuild(run: Run) -> None:
    run.step("restore-after-rebuild").ok()
    source = run.src / "one" / "sub" / "small-3.txt"
    target = restored(run.out, "after-rebuild", source)
    assert target.read_bytes() == source.read_bytes()


def test_jobs_after_rebuild_are_still_newest_first(run: Run) -> None:
    names = [j["name"] for j in run.step("jobs-after-rebuild").json()]
    assert names == [j["name"] for j in run.step("jobs-before-rebuild").json()] == ["big", "two", "one"]


def test_verify_after_rebuild_takes_the_newest_job(run: Run) -> None:
    ids = {j["name"]: j["id"] for j in run.step("jobs-after-rebuild").json()}
    out = run.step("verify-newest-after-rebuild").ok().stdout
    assert re.search(rf"Verified job\(s\) {ids['big']} on tape ", out), (ids, out)
