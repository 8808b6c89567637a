"""Boot a guest with a default library and run a shell snippet in it, for a
look at the devices::

    python3 -m tests.system.harness 'lsscsi -g; mtx -f $PYTP_TEST_CHANGER status'
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from .guest import run_in_guest
from .host import repo_root
from .image import prepare_guest
from .tgt import Cartridge, LibrarySpec, TapeLibrary


def _main(argv: Sequence[str]) -> int:
    """Boot a guest with a default library and run a shell snippet in it."""
    script = " ".join(argv) if argv else "lsscsi -g; mtx -f $PYTP_TEST_CHANGER status"
    t0 = time.monotonic()
    image = prepare_guest()
    t1 = time.monotonic()
    spec = LibrarySpec(
        drives=2,
        slots=8,
        import_export=1,
        cartridges=tuple(Cartridge(f"PYT{i:03d}L9", size_mb=64, slot=i) for i in range(1, 4)),
    )
    with TapeLibrary(spec) as lib:
        t2 = time.monotonic()
        result = run_in_guest(image, lib, script, cwd=repo_root())
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    print(
        f"[harness] image {t1 - t0:.1f} s, tgtd {t2 - t1:.1f} s, guest {result.wall_seconds:.1f} s "
        f"(timings {result.timings}), exit {result.exit_code}",
        file=sys.stderr,
    )
    return result.exit_code or 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
