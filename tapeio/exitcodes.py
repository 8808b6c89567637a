"""The exit codes of every pytp command, in one place.

They live in the lowest layer so that the error classes of both ``tapeio`` and
``catalog`` can carry their code, and ``cli`` only reads it (the way borg keeps
``EXIT_*`` in ``constants.py``).  ``pytp exit-codes`` prints the table, and the
README's copy is kept in sync by a test.

1 only ever means "the job finished but is partial": an error of any other
kind, a bug included, is never 1 (``cli/app.py`` maps unexpected exceptions
to 3), so a script can tell "look at the skipped files" from "it failed".
"""

EXIT_SUCCESS = 0
#: Only ever this: the job finished but something was skipped (an unreadable or
#: changing file): the job is ``partial`` and every skipped path was reported.
EXIT_WARNING = 1
#: Bad command line (click's own code for usage errors).
EXIT_USAGE = 2
#: Any other error that is not one of the kinds below, unexpected ones included.
EXIT_ERROR = 3
#: The configuration is missing, unreadable, or names an unknown drive/library.
EXIT_CONFIG = 4
#: The catalog database cannot be opened, is stale, or lacks what was asked for.
EXIT_CATALOG = 5
#: The drive failed: busy, no medium, I/O error, block size, write protection.
EXIT_DRIVE = 6
#: The tape is full (end of medium) and the job could not continue.
EXIT_TAPE_FULL = 7
#: The tape is not the one expected, is foreign, or is in another pool.
EXIT_WRONG_TAPE = 8
#: The media changer failed or refused a move.
EXIT_CHANGER = 9
#: Verification found damaged, missing or changed data; or a catalog rebuild
#: found damaged, distrusted or unread tapes (and imported everything else).
EXIT_VERIFY_FAILED = 10
#: Nothing matched the selection (search, restore, verify).
EXIT_NOT_FOUND = 11
#: A restore would write outside its target or over existing files.
EXIT_RESTORE_REFUSED = 12
#: The command was interrupted (Ctrl-C); what was running is marked failed.
EXIT_INTERRUPTED = 130
#: What read the output went away first (``pytp jobs | head -1``), as a shell tool ended
#: by SIGPIPE reports it (128 + 13); pytp itself is not killed by the signal.
EXIT_PIPE = 141

#: (code, name, meaning) rows for ``pytp exit-codes`` and the README test.
TABLE: list[tuple[int, str, str]] = [
    (EXIT_SUCCESS, "success", "everything asked for was done"),
    (EXIT_WARNING, "partial", "only ever: the job finished but some files were skipped or changed (job 'partial')"),
    (EXIT_USAGE, "usage", "bad command line: unknown option, missing argument"),
    (EXIT_ERROR, "error", "an error not covered below, unexpected ones included (details: --debug)"),
    (EXIT_CONFIG, "config", "configuration missing or wrong, unknown drive or library"),
    (
        EXIT_CATALOG,
        "catalog",
        "catalog unreachable, damaged, inconsistent, or of another schema (older: 'pytp db upgrade')",
    ),
    (EXIT_DRIVE, "drive", "drive busy, no tape, I/O error, write-protected, wrong block size"),
    (EXIT_TAPE_FULL, "tape-full", "end of medium reached and the job could not continue"),
    (EXIT_WRONG_TAPE, "wrong-tape", "tape not the one expected, foreign, in retention or another pool"),
    (EXIT_CHANGER, "changer", "the library could not load, unload or move"),
    (EXIT_VERIFY_FAILED, "verify-failed", "verify or rebuild found damaged, missing or changed data"),
    (EXIT_NOT_FOUND, "not-found", "nothing matched the selection"),
    (EXIT_RESTORE_REFUSED, "restore-refused", "restore would escape its target or overwrite files"),
    (EXIT_INTERRUPTED, "interrupted", "interrupted; the running job was marked failed"),
    (EXIT_PIPE, "pipe-closed", "what read the output stopped reading (as `head` does); nothing else failed"),
]
