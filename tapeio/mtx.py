"""The mtx media changer backend: runs ``mtx -f DEVICE …`` and nothing more.

Parsing lives in :mod:`.mtx_parse` (pure, tested on transcripts); this module
only builds the argument list, runs the tool with a timeout and turns a failure
into a :class:`MtxError` that keeps what mtx printed.  This is the split of
Proxmox Backup Server's ``mtx_wrapper.rs`` / ``parse_mtx_status.rs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from .changer import Changer, ChangerStatus
from .errors import ChangerError
from .mtx_parse import classify_mtx_error, parse_mtx_status

#: Long enough for a real robot: a load on a large library (fetch, drive
#: threading) takes minutes, and ``status`` may wait for an inventory scan.
#: The configuration's ``timeouts.changer_move_seconds`` sets it (issue 11).
DEFAULT_TIMEOUT = 900.0


class MtxError(ChangerError):
    """mtx failed; the message says why and what to do, the output is kept.

    :param message: the classified message.
    :param command: the argument list that was run.
    :param returncode: mtx's exit status, None when it timed out.
    :param stdout: what mtx printed on stdout.
    :param stderr: what mtx printed on stderr.
    :param kind: the failure kind from :mod:`.mtx_parse` (``"source-empty"``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        kind: str = "unknown",
    ) -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.kind = kind

    @property
    def output(self) -> str:
        """stderr then stdout, as one text (for logs and ``--verbose``)."""
        return "\n".join(part for part in (self.stderr, self.stdout) if part)


class MtxChanger(Changer):
    """A SCSI media changer driven through the ``mtx`` program.

    :param device_path: the changer's SCSI generic node (``/dev/sg3``, ``/dev/sch0``).
    :param name: the library's name in the configuration, used in messages.
    :param mtx: the program to run; looked up on ``PATH`` when it has no slash.
    :param timeout: seconds before a hanging mtx is killed.
    """

    def __init__(
        self,
        device_path: str | os.PathLike[str],
        name: str,
        *,
        mtx: str = "mtx",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.device_path = os.fspath(device_path)
        self.name = name
        self.mtx = mtx
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"MtxChanger({self.device_path!r}, {self.name!r})"

    # -- running -----------------------------------------------------------------

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``mtx -f DEVICE *args``; raise :class:`MtxError` unless it succeeded."""
        program = shutil.which(self.mtx)
        if program is None:
            raise ChangerError(
                f"The '{self.mtx}' program is not installed, so library {self.name} cannot be used. "
                "Install it (Debian/Ubuntu: apt install mtx)."
            )
        command = [program, "-f", self.device_path, *args]
        # mtx prints strerror() text ("No such file or directory"); the C locale
        # keeps it in English so the classifier recognises it.
        env = {**os.environ, "LC_ALL": "C"}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=self.timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            stdout = _text(err.stdout)
            stderr = _text(err.stderr)
            raise MtxError(
                f"mtx {' '.join(args)} on library {self.name} ({self.device_path}) did not finish "
                f"within {self.timeout:g} s and was stopped. Check the library's display for a "
                "jammed or waiting robot, then retry (timeouts.changer_move_seconds in the "
                "configuration sets the limit).",
                command=command, returncode=None, stdout=stdout, stderr=stderr, kind="timeout",
            ) from err
        except OSError as err:
            raise ChangerError(f"Cannot run {program}: {err.strerror}.") from err
        if done.returncode != 0:
            failure = classify_mtx_error(f"{done.stderr}\n{done.stdout}", done.returncode)
            raise MtxError(
                f"mtx {' '.join(args)} on library {self.name} ({self.device_path}) failed: {failure.message}",
                command=command,
                returncode=done.returncode,
                stdout=done.stdout,
                stderr=done.stderr,
                kind=failure.kind,
            )
        return done

    # -- the Changer protocol ----------------------------------------------------

    def status(self) -> ChangerStatus:
        """The library's drives, slots and barcodes (``mtx status``)."""
        done = self._run("status")
        try:
            return parse_mtx_status(done.stdout)
        except ChangerError as err:
            raise MtxError(
                f"Library {self.name} ({self.device_path}): {err}",
                command=list(done.args),
                returncode=done.returncode,
                stdout=done.stdout,
                stderr=done.stderr,
                kind="unparsable-status",
            ) from err

    def load(self, slot: int, drive: int) -> None:
        """Move the tape in ``slot`` into ``drive`` (``mtx load SLOT DRIVE``).

        :param slot: storage element number, from 1.
        :param drive: data transfer element number, from 0.
        """
        _check_slot(slot)
        _check_drive(drive)
        self._run("load", str(slot), str(drive))

    def unload(self, slot: int | None, drive: int) -> None:
        """Put the tape in ``drive`` into ``slot``, or back where it came from.

        With ``slot`` None the source slot comes from ``mtx status``; when the
        library does not know it (``Unknown Storage Element Loaded``), or it is
        now occupied, the unload is refused rather than left to mtx's guess.

        :param slot: storage element number from 1, or None for the source slot.
        :param drive: data transfer element number, from 0.
        """
        _check_drive(drive)
        if slot is None:
            slot = self._source_slot(drive)
        else:
            _check_slot(slot)
        self._run("unload", str(slot), str(drive))

    def transfer(self, source: int, destination: int) -> None:
        """Move a tape from slot ``source`` to slot ``destination`` (``mtx transfer``).

        :param source: storage element number, from 1.
        :param destination: storage element number, from 1.
        """
        _check_slot(source)
        _check_slot(destination)
        self._run("transfer", str(source), str(destination))

    # -- helpers -----------------------------------------------------------------

    def _source_slot(self, drive: int) -> int:
        status = self.status()
        element = status.drive(drive)
        if element is None:
            raise ChangerError(
                f"Library {self.name} has no drive {drive} (it has {len(status.drives)}; drives count from 0)."
            )
        if not element.full:
            raise ChangerError(f"Drive {drive} of library {self.name} is empty; there is nothing to unload.")
        if element.source_slot is None:
            raise ChangerError(
                f"Library {self.name} does not know which slot the tape in drive {drive} came from. "
                "Name an empty slot to unload into (pytp unload SLOT)."
            )
        home = status.slot(element.source_slot)
        if home is not None and home.full:
            raise ChangerError(
                f"The tape in drive {drive} came from slot {element.source_slot}, which now holds "
                f"{home.barcode or 'another tape'}. Name an empty slot to unload into (pytp unload SLOT)."
            )
        return element.source_slot


def _check_slot(slot: int) -> None:
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 1:
        raise ChangerError(f"Slot {slot!r} is not valid: slots are numbered from 1 (see 'pytp status').")


def _check_drive(drive: int) -> None:
    if isinstance(drive, bool) or not isinstance(drive, int) or drive < 0:
        raise ChangerError(f"Drive {drive!r} is not valid: drives are numbered from 0 (see 'pytp status').")


def _text(data: str | bytes | None) -> str:
    """TimeoutExpired carries bytes even when text=True was asked for."""
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data
