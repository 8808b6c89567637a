"""The notification hook: ``notify.command`` runs after each job with its summary on stdin.

Unattended runs must report themselves (issue 11, part 4).  The command is a
shell command line (``/bin/sh -c``), so mail, curl or a script of the site's
own work alike.  It gets the job summary as JSON on stdin (``joblog.JobSummary``)
and, for one-line uses such as a mail subject, ``PYTP_JOB_KIND``,
``PYTP_JOB_STATUS``, ``PYTP_JOB_ID`` and ``PYTP_EXIT_CODE`` in its environment.

A hook that fails, hangs or cannot be started is a warning for the caller to
print: it never changes the job's exit code (the job's outcome is what a
scheduler must see).  It runs in a session of its own so that on timeout the
whole process group is killed, not only the shell (``sh -c 'curl ...'``
would otherwise keep the pipe open and outlive us).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

#: seconds a hook may take before it is killed
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class NotifyConfig:
    """The ``notify`` section of the configuration.

    :param command: a shell command line, or None for no hook.
    :param timeout_seconds: the hook is killed after this long.
    """

    command: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT


def run_hook(config: NotifyConfig, summary: dict[str, Any]) -> str | None:
    """Run the hook with ``summary`` as JSON on stdin.

    :returns: None when it succeeded (or there is none), else what went wrong,
        for a warning.
    """
    if not config.command:
        return None
    env = dict(
        os.environ,
        PYTP_JOB_KIND=str(summary.get("kind", "")),
        PYTP_JOB_STATUS=str(summary.get("status", "")),
        PYTP_JOB_ID="" if summary.get("job_id") is None else str(summary["job_id"]),
        PYTP_EXIT_CODE=str(summary.get("exit_code", "")),
    )
    payload = (json.dumps(summary, indent=2, default=str) + "\n").encode()
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", config.command],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as err:
        return f"the notify command could not be started: {err.strerror or err}"
    try:
        _, stderr = process.communicate(payload, timeout=config.timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return f"the notify command did not finish within {config.timeout_seconds:g} s and was killed"
    if process.returncode != 0:
        last = (stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        return f"the notify command exited with {process.returncode}" + (f": {last}" if last else "")
    return None


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
