"""Time a pytp command inside one warm process: ``python -m bench.inproc N ARGS…``.

The first call pays for the imports; the next N calls are timed and their
seconds printed as a JSON list.  Each call is a whole command as click runs
it (configuration read, catalog opened and its schema checked, output
formatted), only without the interpreter's start and the imports: what a
long-running caller of pytp would see.  Output goes to /dev/null.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time


def main() -> None:
    repeat, args = int(sys.argv[1]), sys.argv[2:]
    from pytp.cli.main import cli

    seconds = []
    with open(os.devnull, "w") as devnull:
        for i in range(repeat + 1):
            start = time.perf_counter()
            with contextlib.redirect_stdout(devnull):
                cli.main(args=args, prog_name="pytp", standalone_mode=False)
            if i:
                seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()
