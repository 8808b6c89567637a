"""The manifest's member lines are byte for byte those of ``manifest.entry_line`` (docs/format.md#manifest).

``manifest_writer.LineMaker`` writes them without a dict and the JSON encoder
per member; GNU tar users, rebuild and verify read these bytes, so any
difference from the general form is a format change.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from pytp.catalog.backup import BackupOptions, run_backup
from pytp.catalog.database import open_catalog
from pytp.catalog.devices import select as select_drive
from pytp.catalog.manifest import ENTRY_COLUMNS, entry_line
from pytp.catalog.manifest_writer import LineMaker, manifest_lines
from pytp.catalog.models import Entry, TapeFile, Volume, table_of
from pytp.tapeio.virtual_drive import loaded_tape
from tests.conftest import make_tree

PATHS = [b"/a/b", "/é/ü/日本/😀".encode(), b"/bad/\xff\xfe", b'/q"uo\\te\n\t\x01\x7f', b"/"]
LINKS = [None, b"/x", b"\xff/y", "t/é".encode()]
DIGESTS = [None, "ab" * 16]
SPARSE = [None, "0:512 1024:0"]
PARTS = [None, [], [{"part": 1, "tape": "T1", "tape_file": 1, "offset": 0, "header_size": 512, "data_size": 5}]]
OFFSETS = [-1, 0, 2**62]


@pytest.mark.parametrize("label, file_number", [("L00001L9", 1), ('Lé"\\', 2**31 - 1)])
def test_every_kind_of_value_gives_the_line_entry_line_gives(label: str, file_number: int) -> None:
    maker = LineMaker(label, file_number)
    for path, link, xxh3, sparse, parts, offset in itertools.product(PATHS, LINKS, DIGESTS, SPARSE, PARTS, OFFSETS):
        values = (path, "file", 2**40, 0o755, 0, 2**32 - 1, "root", 'gr"üp', -5, 10**18, 12, 2049, link, xxh3, offset)
        values += (1536, sparse)
        expected = entry_line(dict(zip(ENTRY_COLUMNS, values)), label, file_number, parts)
        assert maker.line(values, parts) == expected


def test_a_value_of_another_type_still_gives_entry_lines_bytes() -> None:
    # A NULL where a number belongs (a row written by hand) is JSON null, as before.
    values = (b"/x", "file", None, 0o644, 0, 0, "", "", 0, 0, 0, 0, None, None, 0, 512, None)
    assert LineMaker("T", 1).line(values) == entry_line(dict(zip(ENTRY_COLUMNS, values)), "T", 1)
    assert b'"size":null' in LineMaker("T", 1).line(values)


def _every_kind(root: Path) -> Path:
    """``make_tree`` (files, links, raw names, long paths) and a fifo, a sparse file, xattrs."""
    make_tree(root, big_file=1 << 16)
    os.mkfifo(root / "pipe")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(8 << 20)
        f.seek(4 << 20)
        f.write(b"data in the middle")
    os.symlink(b"caf\xe9/na\xefve-\xff.txt", os.fsencode(root) + b"/raw-link-\xfe")
    try:
        os.setxattr(root / "empty.txt", "user.note", b"kept")
    except OSError:
        pass  # a file system without user xattrs: the rest still counts
    return root


def test_the_manifest_of_every_member_kind_is_entry_lines_of_the_catalog_rows(lib_config, tmp_path: Path) -> None:
    engine = open_catalog(lib_config.catalog_url)
    source = _every_kind(tmp_path / "src")
    result = run_backup(engine, lib_config, select_drive(lib_config), BackupOptions([str(source)]))
    assert result.status == "ok", result
    entry, tape_file, volume = table_of(Entry), table_of(TapeFile), table_of(Volume)
    statement = (
        select(*(entry.c[name] for name in ENTRY_COLUMNS), volume.c.label, tape_file.c.file_number)
        .join(tape_file, tape_file.c.id == entry.c.tape_file_id)
        .join(volume, volume.c.id == tape_file.c.volume_id)
        .where(entry.c.job_id == result.job_id)
        .order_by(tape_file.c.id, entry.c.offset, entry.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    # the general form, from each row's columns, as the manifest was written before LineMaker
    expected = [entry_line(dict(row._mapping), row.label, row.file_number) for row in rows]
    kinds = {row.kind for row in rows}
    assert {"file", "dir", "symlink", "hardlink", "fifo"} <= kinds
    assert any(row.sparse_map for row in rows) and any(b"path_b64" in line for line in expected)
    assert list(manifest_lines(engine, result.job_id)) == expected
    tape = loaded_tape(lib_config.drive("d0").device_path)
    assert tape is not None
    on_tape = subprocess.run(["tar", "-xOf", str(tape / "file-00002")], capture_output=True, check=True).stdout
    assert on_tape.split(b"\n", 1)[1] == b"".join(expected)
