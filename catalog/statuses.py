"""The status words the catalog stores, importable without the ORM (issue 9).

Listings read them with plain SQL (``light_sql``), so they live apart from
``models``, which re-exports them: importing ``models`` costs sqlmodel,
pydantic and SQLAlchemy, several times a listing's own work.

The statuses are StrEnums: each member is the very string stored in the
(plain text) status column, so rows, queries and JSON output see "ok", not
an enum, and no migration was needed to introduce them.
"""

from __future__ import annotations

from enum import StrEnum, nonmember


class JobStatus(StrEnum):
    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    #: statuses whose entries search and restore offer as good data
    GOOD = nonmember(("ok", "partial"))


class VolumeStatus(StrEnum):
    APPENDABLE = "appendable"
    FULL = "full"
    ERROR = "error"
    #: set by ``pytp tape retire``: never written or recycled, still read for restores
    RETIRED = "retired"
    #: not stored: shown for a tape whose every job is past its retention
    EXPIRED = "expired"


class TapeFileStatus(StrEnum):
    WRITING = "writing"
    COMPLETE = "complete"
    #: the write failed part-way; the tape file exists but is not trusted
    INCOMPLETE = "incomplete"
    #: recorded as started but never reached the tape (crash before any block)
    ABSENT = "absent"
    #: the tape was relabelled (recycled); what was there is gone
    OVERWRITTEN = "overwritten"


#: the kind of an entry that records a path deleted since the previous backup
DELETED = "deleted"
