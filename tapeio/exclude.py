"""What a backup leaves out of a source tree: ``--exclude``, ``--exclude-from``, ``--one-file-system``.

Patterns behave like GNU tar's ``--exclude`` (issue 11): a shell glob
(``*``, ``?``, ``[...]``; ``*`` matches ``/`` too, as tar's default
``--wildcards-match-slash`` for exclusions) matched against a path relative to
the source root and against its base name, so ``cache`` leaves out every
directory named ``cache`` and ``*.tmp`` every such file, at any depth.  A
pattern starting with ``/`` is matched against the absolute path instead.  An
excluded directory is not entered.  The source root itself is never excluded:
it was named on the command line.

Patterns are bytes, like the paths, so a name that is not UTF-8 can be
excluded too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Exclusions:
    """The paths a walk leaves out.

    :param patterns: globs (bytes), see the module docstring.
    :param one_file_system: do not enter a directory on another file system
        than its source root (a mount point is stored, its contents are not).
    """

    patterns: tuple[bytes, ...] = ()
    one_file_system: bool = False

    @classmethod
    def build(
        cls,
        patterns: Iterable[str | bytes] = (),
        files: Iterable[str | os.PathLike[str]] = (),
        one_file_system: bool = False,
    ) -> Exclusions:
        """Patterns given one by one plus those of pattern files (one a line, as tar's ``-X``).

        :raises OSError: a pattern file cannot be read.
        """
        result = [os.fsencode(p) for p in patterns]
        for name in files:
            with open(name, "rb") as f:
                result.extend(read_patterns(f.read()))
        return cls(tuple(p for p in result if p), one_file_system)

    def __bool__(self) -> bool:
        return bool(self.patterns) or self.one_file_system

    def excluded(self, path: bytes, relative: bytes) -> bool:
        """Whether ``path`` (absolute; ``relative`` to its source root) is left out by a pattern."""
        if not relative:
            return False
        base = relative.rsplit(b"/", 1)[-1]
        for pattern in self.patterns:
            if pattern.startswith(b"/"):
                if fnmatchcase(path, pattern.rstrip(b"/") or b"/"):
                    return True
            elif fnmatchcase(relative, pattern.rstrip(b"/")) or fnmatchcase(base, pattern.rstrip(b"/")):
                return True
        return False


def read_patterns(data: bytes) -> list[bytes]:
    """The patterns of an ``--exclude-from`` file: one a line; empty lines and CR line ends ignored."""
    return [line.rstrip(b"\r") for line in data.split(b"\n") if line.rstrip(b"\r")]
