"""Runners for the QEMU guest of the system tests: pytp commands and the drive contract.

Under TCG, Python in the guest is about 15 times slower than on the host:
importing sqlmodel and alembic alone takes 15-20 s. So this program runs many
pytp command lines inside ONE guest process, through the click group, as the
``pytp`` console script would run each of them: same argument parsing, same
error mapping (``PytpGroup.invoke`` → ``ctx.exit(code)``), same exit codes.
The host test (``test_pytp_on_kernel_stack.py``) writes the plan and reads the
results back from the job directory.

Usage, inside the guest::

    python guest_pytp.py run PLAN.json RESULTS.json
    python guest_pytp.py contract RESULTS.json --device /dev/nst0 \\
        --eom-device /dev/nst1 --eom-bytes 2000000 --block-size 65536

``run``: PLAN.json holds ``{"steps": [...]}``, each step one of

* ``{"name": N, "pytp": [ARG, ...]}``: one pytp command line, in process;
  ``$VAR``/``${VAR}`` in an argument is replaced from the environment
  (``os.path.expandvars``: host paths the plan cannot know, such as
  ``${PYTP_TEST_OUT}``);
* ``{"name": N, "sh": SCRIPT}``: a bash script (mt, mtx, tar, rm ...), which
  sees ``$PYTP_STEPS``, the directory holding every earlier step's stdout
  as ``NAME.out``.

Every step runs, whatever the earlier ones returned; the host judges.
RESULTS.json is rewritten after each step (so a guest that dies still
leaves what it did) as ``{"meta": {...}, "steps": [{"name", "kind",
"argv", "exit_code", "stdout", "stderr", "seconds", "traceback"}]}``.

A real pytp process ends after one command and so closes its catalog
connections. Here every SQLAlchemy engine pytp builds is disposed of after
its command, so that e.g. deleting the SQLite catalog between two commands
behaves as it would between two processes (an engine left open would, on
being garbage collected, checkpoint into and delete the new catalog's WAL).

``contract``: runs the shared drive contract (``tests/tapeio/contract.py``)
against :class:`pytp.tapeio.st_drive.StDrive`, each check on a fresh handle
at BOT in fixed-block mode, and writes one result per check (pass/fail,
error, traceback, seconds) plus the drive's SCSI inquiry strings.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _text(data: bytes) -> str:
    # Output is UTF-8 text; a stray byte must not make the whole result unreadable.
    return data.decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------
# pytp commands in one process


class _Engines:
    """Records the engines pytp builds, to dispose of them as a process exit would."""

    def __init__(self) -> None:
        self.engines: list[Any] = []
        self.disposed = 0

    def install(self) -> None:
        from pytp.catalog import database

        make_engine = database.make_engine

        def recording(url: str) -> Any:
            engine = make_engine(url)
            self.engines.append(engine)
            return engine

        # open_catalog and `pytp db` look make_engine up in the module at call time.
        database.make_engine = recording  # type: ignore[assignment]

    def dispose_all(self) -> None:
        while self.engines:
            self.engines.pop().dispose()
            self.disposed += 1


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.BytesIO, io.BytesIO]]:
    """stdout and stderr as the console script would have them (same encoding and errors)."""
    out, err = io.BytesIO(), io.BytesIO()

    def wrap(buffer: io.BytesIO, like: Any) -> io.TextIOWrapper:
        encoding = getattr(like, "encoding", None) or "utf-8"
        errors = getattr(like, "errors", None) or "strict"
        return io.TextIOWrapper(buffer, encoding=encoding, errors=errors, write_through=True)

    stdout, stderr = wrap(out, sys.__stdout__), wrap(err, sys.__stderr__)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
    sys.stdout, sys.stderr = stdout, stderr
    try:
        yield out, err
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        # Detached, the wrappers no longer close the buffers when collected.
        stdout.detach()
        stderr.detach()


def run_pytp(cli: Any, argv: list[str]) -> tuple[int, bytes, bytes, str | None]:
    """Run one pytp command line as ``pytp ARGV`` would; return (exit code, stdout, stderr, traceback).

    ``standalone_mode=True`` is what the console script uses: click prints
    usage errors and exits 2, ``ctx.exit(code)`` becomes ``SystemExit(code)``.
    An exception click does not handle would end the real process with a
    traceback and status 1; it is recorded as such.
    """
    tb = None
    with _captured() as (out, err):
        try:
            cli.main(args=argv, prog_name="pytp", standalone_mode=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
            if done.code is not None and not isinstance(done.code, int):
                print(done.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - recorded, as the interpreter would print it
            tb = traceback.format_exc()
            print(tb, file=sys.stderr, end="")
            code = 1
    return code, out.getvalue(), err.getvalue(), tb


def run_plan(plan_path: Path, results_path: Path) -> int:
    plan = json.loads(plan_path.read_text())
    steps_dir = results_path.parent / "pytp-steps"
    steps_dir.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"python": sys.version.split()[0], "pid": os.getpid()}
    results: list[dict[str, Any]] = []
    document = {"meta": meta, "steps": results}

    # Imports first, timed apart, so that each step's time is its own work.
    t0 = time.monotonic()
    from pytp.cli.main import cli

    meta["import_cli_seconds"] = round(time.monotonic() - t0, 2)
    t1 = time.monotonic()
    engines = _Engines()
    engines.install()  # imports the catalog: sqlmodel, alembic
    import pytp.catalog.backup  # noqa: F401
    import pytp.catalog.restore  # noqa: F401

    meta["import_catalog_seconds"] = round(time.monotonic() - t1, 2)
    meta["pytp_file"] = sys.modules["pytp.cli.main"].__file__
    _write_json(results_path, document)

    env = {**os.environ, "PYTP_STEPS": str(steps_dir)}
    started = time.monotonic()
    for step in plan["steps"]:
        name = step["name"]
        t = time.monotonic()
        if "pytp" in step:
            argv = [os.path.expandvars(str(a)) for a in step["pytp"]]
            code, out, err, tb = run_pytp(cli, argv)
            engines.dispose_all()
            kind = "pytp"
        else:
            argv = ["bash", "-c", step["sh"]]
            proc = subprocess.run(argv, capture_output=True, env=env, stdin=subprocess.DEVNULL, check=False)
            code, out, err, tb = proc.returncode, proc.stdout, proc.stderr, None
            kind = "sh"
        seconds = time.monotonic() - t
        (steps_dir / f"{name}.out").write_bytes(out)
        results.append(
            {
                "name": name,
                "kind": kind,
                "argv": argv,
                "exit_code": code,
                "stdout": _text(out),
                "stderr": _text(err),
                "seconds": round(seconds, 2),
                "traceback": tb,
            }
        )
        meta["steps_seconds"] = round(time.monotonic() - started, 2)
        meta["engines_disposed"] = engines.disposed
        _write_json(results_path, document)
    return 0


# --------------------------------------------------------------------------
# the drive contract on st


def _inquiry(device: str) -> dict[str, str]:
    """Vendor, model and revision of a tape node, from sysfs (what lsscsi shows)."""
    name = os.path.basename(device)
    base = Path("/sys/class/scsi_tape") / name / "device"
    info = {}
    for key in ("vendor", "model", "rev"):
        try:
            info[key] = (base / key).read_text().strip()
        except OSError:
            info[key] = ""
    return info


def _run_check(label: str, kind: str, body: Callable[[], None]) -> dict[str, Any]:
    t = time.monotonic()
    try:
        body()
    except BaseException as err:  # noqa: BLE001 - a failed check is a result, not the end
        return {
            "name": label,
            "kind": kind,
            "ok": False,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
            "seconds": round(time.monotonic() - t, 2),
        }
    return {
        "name": label,
        "kind": kind,
        "ok": True,
        "error": None,
        "traceback": None,
        "seconds": round(time.monotonic() - t, 2),
    }


#: What StDrive must do beyond the shared contract, where tgt differs from real
#: drives (tapeio/st_drive.py, module doc); run after the contract checks.
ST_EXTRAS = (
    "st_blank_cartridge_reads_as_blank",
    "st_eod_reports_the_true_file_number",
    "st_other_block_size_is_not_blank",
)


def _st_extras(contract: Any, at_bot: Callable[[str], Any], device: str, blank_device: str | None) -> dict[str, Any]:
    from pytp.tapeio.errors import BlankTape, TapeIOError

    def blank_cartridge() -> None:
        # A cartridge never written: a read says blank (tgt: MEDIUM ERROR,
        # real drives: BLANK CHECK), eod stays at file 0.
        assert blank_device, "no second drive with a blank cartridge"
        drive = at_bot(blank_device)
        try:
            try:
                drive.read(drive.status().block_size)
            except BlankTape:
                pass
            else:
                raise AssertionError("a read on a blank cartridge did not raise BlankTape")
            drive.rewind()
            drive.eod()
            status = drive.status()
            assert (status.file_number, status.eod) == (0, True), status
        finally:
            drive.close()

    def eod_file_number() -> None:
        # tgt sends no residual count: st alone would say file 0x7fffff + start.
        drive = at_bot(device)
        try:
            size = contract.block_size(drive)
            contract.write_files(drive, 2, 1, 1)
            drive.rewind()
            drive.fsf(1)
            drive.eod()
            status = drive.status()
            assert (status.file_number, status.eod) == (3, True), status
            drive.write(contract.block(3, 0, size))
            drive.weof(1)
            assert contract.position(drive) == (4, 0)
            drive.rewind()
            drive.fsf(3)
            assert contract.read_file(drive) == contract.block(3, 0, size)
        finally:
            drive.close()

    def other_block_size() -> None:
        # A tape written with bigger blocks is data, not end of data: pytp
        # must never take it for blank (and label over it).
        drive = at_bot(device)
        try:
            size = contract.block_size(drive)
            contract.write_files(drive, 2)
            drive.rewind()
            drive.set_block_size(size // 2)
            try:
                drive.read(size // 2)
            except BlankTape as err:
                raise AssertionError(f"blocks of another size read as end of data: {err}") from err
            except TapeIOError:
                pass
        finally:
            drive.close()

    bodies = (blank_cartridge, eod_file_number, other_block_size)
    return dict(zip(ST_EXTRAS, bodies, strict=True))


def run_contract(results_path: Path, device: str, eom_device: str | None, eom_bytes: int, block_size: int) -> int:
    meta: dict[str, Any] = {"device": device, "inquiry": _inquiry(device), "block_size": block_size}
    results: list[dict[str, Any]] = []
    document = {"meta": meta, "checks": results}
    t0 = time.monotonic()
    sys.path.insert(0, str(REPO))
    from pytp.tapeio.drive import ensure_block_size
    from pytp.tapeio.st_drive import StDrive
    from tests.tapeio import contract

    meta["import_seconds"] = round(time.monotonic() - t0, 2)
    _write_json(results_path, document)

    def at_bot(path: str) -> StDrive:
        drive = StDrive(path, name=os.path.basename(path))
        # The tape is reused from check to check: every check writes from BOT,
        # which ends the data there, so a rewound tape is as good as blank.
        drive.rewind()
        ensure_block_size(drive, block_size)
        return drive

    def plain(check: Callable[[Any], None]) -> Callable[[], None]:
        def body() -> None:
            drive = at_bot(device)
            try:
                check(drive)
            finally:
                drive.close()

        return body

    def reopening(check: Callable[[Any, Callable[[], Any]], None]) -> Callable[[], None]:
        def body() -> None:
            drive = at_bot(device)
            try:
                check(drive, lambda: StDrive(device, name=os.path.basename(device)))
            finally:
                drive.close()

        return body

    for check in contract.CHECKS:
        results.append(_run_check(check.__name__, "check", plain(check)))
        _write_json(results_path, document)
    for check in contract.REOPEN_CHECKS:
        results.append(_run_check(check.__name__, "reopen", reopening(check)))
        _write_json(results_path, document)
    for name, extra in _st_extras(contract, at_bot, device, eom_device).items():
        results.append(_run_check(name, "st", extra))
        _write_json(results_path, document)
    if eom_device:
        meta["eom_inquiry"] = _inquiry(eom_device)

        def eom(check: Callable[[Any, int], None]) -> Callable[[], None]:
            def body() -> None:
                drive = at_bot(eom_device)
                try:
                    check(drive, eom_bytes)
                finally:
                    drive.close()

            return body

        results.append(_run_check("check_end_of_medium", "eom", eom(contract.check_end_of_medium)))
        _write_json(results_path, document)
        for check in contract.EOM_CHECKS:
            results.append(_run_check(check.__name__, "eom", eom(check)))
            _write_json(results_path, document)
    meta["seconds"] = round(time.monotonic() - t0, 2)
    _write_json(results_path, document)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run", help="run the pytp command lines of a plan")
    run.add_argument("plan", type=Path)
    run.add_argument("results", type=Path)
    con = sub.add_parser("contract", help="run the drive contract against StDrive")
    con.add_argument("results", type=Path)
    con.add_argument("--device", required=True)
    con.add_argument("--eom-device")
    con.add_argument("--eom-bytes", type=int, default=0)
    con.add_argument("--block-size", type=int, default=65536)
    args = parser.parse_args(argv)
    if args.mode == "run":
        return run_plan(args.plan, args.results)
    return run_contract(args.results, args.device, args.eom_device, args.eom_bytes, args.block_size)


if __name__ == "__main__":
    sys.exit(main())
