"""Hostile tapes through `catalog rebuild` (issue 8): manifests that are not
JSON, wrong-typed fields, absurd offsets, unsafe paths, huge lines, archives
with absolute and `..` names, and labels that lie.  The rebuild never crashes,
reports each bad item by tape, tape file and line, and adds no row that could
send a restore outside its target."""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile
from pathlib import Path

from click.testing import CliRunner, Result

from pytp.catalog.rebuild_scan import MAX_LINES_REPORTED
from pytp.cli.main import cli
from pytp.tapeio.exitcodes import EXIT_VERIFY_FAILED
from tests.conftest import write_library_config
from tests.crafted_tape import (
    DEFAULT_BLOCK_SIZE,
    Manifest,
    dir_member,
    file_member,
    job_files,
    library_tape,
    link_member,
    make_label,
    manifest_job,
    manifest_payload,
    member_lines,
    tar_bytes,
    write_tape,
)

TAPE = "PYT001L9"


def _site(tmp_path: Path, tapes: int = 1) -> tuple[Path, Path, Path]:
    database = tmp_path / "catalog.db"
    config = write_library_config(
        tmp_path / "site",
        f"sqlite:///{database}",
        tapes=tapes,
        block_size=DEFAULT_BLOCK_SIZE,
        pools=[{"name": "default", "retention_days": 30}],
    )
    return config, tmp_path / "site" / "lib", database


def _run(config: Path, *args: str, expect: int | None = 0) -> Result:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output
    return result


def _paths(database: Path) -> list[bytes]:
    with sqlite3.connect(database) as db:
        # path is NULL when it is the UTF-8 of path_text (catalog.entry_types)
        return sorted(row[0] for row in db.execute("SELECT coalesce(path, CAST(path_text AS BLOB)) FROM entry"))


def _archive() -> bytes:
    return tar_bytes(
        [
            dir_member("data/"),
            file_member("data/one.txt", b"one\n"),
            file_member("data/two.txt", b"two\n" * 1000),
            file_member("data/three.txt", b"three\n"),
            link_member("data/link", "one.txt"),
        ]
    )


def test_hostile_manifest_lines_are_each_reported_and_none_is_trusted(tmp_path: Path) -> None:
    config, library, database = _site(tmp_path)
    archive = _archive()
    good = member_lines(archive, TAPE, 1)
    by_name = {line["path"]: line for line in good}
    one, two, three = by_name["/data/one.txt"], by_name["/data/two.txt"], by_name["/data/three.txt"]
    hostile: list[dict | str | bytes] = [
        by_name["/data"],  # line 2: good
        "this is not json",  # line 3
        {**one, "size": "big"},  # line 4: wrong type
        {**one, "offset": -512},  # line 5: negative offset
        {**one, "offset": 1 << 40},  # line 6: past the tape file's end
        {**one, "path": "/data/../../../etc/cron.d/evil"},  # line 7: ..
        {**one, "path": "relative/name"},  # line 8: not absolute
        {**one, "type": "hardlink", "path": "/data/hl", "link": "/../../etc/shadow"},  # line 9: hard link out
        b"[" * 200_000,  # line 10: nested beyond any parser's depth
        json.dumps({**one, "uname": "x" * (2 << 20)}),  # line 11: a huge line
        one,  # line 12: good
        {**three, "offset": one["offset"]},  # line 13: duplicate offset
        {**two, "xxh3": 12345},  # line 14: wrong-typed checksum
        {**two, "tape_file": 7},  # line 15: a tape file that is not the job's
        {**two, "parts": "many"},  # line 16: wrong-typed parts
        {"cut": {"path": "/data/two.txt"}},  # a part manifest's note: not a member, not a problem
        by_name["/data/link"],  # line 18: good
        {**one, "path": "/data/huge", "size": 1 << 62},  # line 19: absurd size
        {**one, "path": "/etc/pytp-evil"},  # line 20: outside the tape file's source
        {**one, "type": "hardlink", "path": "/data/hl2", "link": "/etc/shadow"},  # line 21: a link out of it
    ]
    payload = manifest_payload(manifest_job(tape_files=[(TAPE, 1, "/data", archive)], name="hostile"), hostile)
    write_tape(library_tape(library, TAPE), [archive, Manifest(payload)], label=TAPE)

    result = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    out = result.stdout
    assert "Traceback" not in result.output
    for line, text in [
        (3, "is not JSON"),
        (4, "'size' is 'big'"),
        (5, "'offset' is -512"),
        (6, "reach past the end of tape file 1"),
        (7, "contains a '..' component"),
        (8, "is not an absolute path"),
        (9, "hard link target '/../../etc/shadow'"),
        (10, "is not JSON"),
        (11, "bytes long, not a member line"),
        (13, f"offset {one['offset']} is already another member's"),
        (14, "'xxh3' is 12345"),
        (15, "names tape file 7, which is not a data file of this job"),
        (16, "'parts' is not a list of parts"),
        (19, f"size {1 << 62} reach past the end of tape file 1"),
        (20, "path '/etc/pytp-evil' is outside the source '/data' of its tape file"),
        (21, "hard link target '/etc/shadow' is outside the source '/data'"),
    ]:
        assert f"{TAPE} file 2 line {line}: " in out and text in out, (line, text, out)
        assert any(f"{TAPE} file 2 line {line}: " in row and text in row for row in out.splitlines()), (line, text)
    assert "line 17" not in out
    for good_line in (2, 12, 18):
        assert f"line {good_line}:" not in out
    # Nothing unsafe is in the catalog; what the bad lines lost came back from
    # the archive's own headers (two.txt and three.txt, without checksum).
    paths = _paths(database)
    assert paths == [b"/data", b"/data/link", b"/data/one.txt", b"/data/three.txt", b"/data/two.txt"]
    assert all(b".." not in p.split(b"/") for p in paths)
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT path_text, xxh3 FROM entry WHERE kind = 'file'").fetchall()
    checksums = {text: None if xxh3 is None else xxh3.hex() for text, xxh3 in stored}  # 16 bytes stored
    assert checksums["/data/one.txt"] == one["xxh3"]
    assert checksums["/data/two.txt"] is None and checksums["/data/three.txt"] is None
    # And the job restores inside its target.
    target = tmp_path / "target"
    _run(config, "restore", str(target), "--job", "1", "--match", "*")
    assert (target / "data" / "two.txt").read_bytes() == b"two\n" * 1000
    assert not (tmp_path / "etc").exists()


def test_hostile_archive_names_are_refused_when_recovering_from_headers(tmp_path: Path) -> None:
    """No manifest at all: the members come from the tar headers, and unsafe names stay out."""
    config, library, database = _site(tmp_path)
    archive = tar_bytes(
        [
            file_member("ok/fine.txt", b"fine\n"),
            file_member("/etc/absolute.txt", b"absolute\n"),
            file_member("ok/../../escape.txt", b"escape\n"),
            link_member("ok/hard", "../../etc/passwd", hard=True),
            link_member("ok/soft", "/etc/passwd"),  # a symlink may point anywhere: restore confines it
            file_member("ok/after.txt", b"after\n"),
        ]
    )
    write_tape(library_tape(library, TAPE), [archive], label=TAPE)

    result = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED)

    out = result.stdout
    assert f"{TAPE} file 1: data file(s) 1: no manifest describes them" in out
    assert "'/etc/absolute.txt'" in out and "has an absolute name" in out
    assert "'ok/../../escape.txt'" in out and "contains a '..' component" in out
    assert "'ok/hard'" in out and "hard link pointing outside the archive" in out
    assert _paths(database) == [b"/ok/after.txt", b"/ok/fine.txt", b"/ok/soft"]


def test_an_archive_of_many_unsafe_members_lists_the_first_ones_and_counts_the_rest(tmp_path: Path) -> None:
    """A report names each refused member only up to the cap, like bad manifest lines: a hostile
    archive of millions of unsafe names must not make a report (and memory) of millions of lines."""
    config, library, database = _site(tmp_path)
    members = [file_member(f"/etc/absolute-{i:04d}.txt", b"x\n") for i in range(MAX_LINES_REPORTED + 30)]
    write_tape(
        library_tape(library, TAPE), [tar_bytes([*members, file_member("ok/after.txt", b"after\n")])], label=TAPE
    )

    out = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout

    assert out.count("has an absolute name") == MAX_LINES_REPORTED
    assert "'/etc/absolute-0000.txt'" in out and f"'/etc/absolute-{MAX_LINES_REPORTED:04d}.txt'" not in out
    assert "and 30 more member(s) not recovered, not listed" in out
    assert _paths(database) == [b"/ok/after.txt"]


def test_manifest_header_lies_and_broken_manifests(tmp_path: Path) -> None:
    config, library, database = _site(tmp_path)
    archive = _archive()
    lines = member_lines(archive, TAPE, 1)
    lying = manifest_job(
        tape_files=[
            (TAPE, 1, "/data", archive),
            (TAPE, 2, "/nothing", 5),  # that is the manifest itself
            (TAPE, 99, "/nowhere", 5),  # past the end of the tape
            (TAPE, "x", "/typed", 5),
        ],
        name="liar",
        problems="not a list",
        level="bogus",
    )
    files = [
        archive,
        Manifest(manifest_payload(lying, lines)),
        Manifest(b"\xff\xfe not even text"),  # file 3
        Manifest(b""),  # file 4: empty manifest
        Manifest(manifest_payload({"uuid": 42}, [])),  # file 5: uuid of the wrong type
        Manifest(manifest_payload(None, ['{"pytp_manifest": 2, "job": {}}'])),  # file 6: unknown version
        _claims_size("PYTP-MANIFEST.jsonl", 5 << 30),  # file 7: a manifest of 5 GiB, says its header
        _claims_size("PYTP-MANIFEST.jsonl", 1 << 20),  # file 8: cut short (the tape file is one block)
        Manifest(manifest_payload(manifest_job(tape_files=[]), ["garbage"] * 500)),  # file 9: 500 bad lines
    ]
    write_tape(library_tape(library, TAPE), files, label=TAPE)

    out = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout

    assert f"{TAPE} file 2 line 1: the job's data file 2 of tape {TAPE} is a manifest tape file" in out
    assert f"{TAPE} file 2 line 1: the job's data file 99 of tape {TAPE} is not on the tape" in out
    assert f"{TAPE} file 2 line 1: the job's tape file entry" in out
    assert f"{TAPE} file 2 line 1: the job's problem entry 'not a list'" in out
    assert f"{TAPE} file 2 line 1: the job's 'level' is 'bogus', not one of full, incremental, differential" in out
    assert f"{TAPE} file 3 line 1: the header line is not JSON" in out
    assert f"{TAPE} file 5 line 1: the header's job uuid 42 is not a uuid" in out
    assert f"{TAPE} file 6 line 1: the header line is not a version 1 manifest header" in out
    assert f"{TAPE} file 7: manifest unreadable (member 'PYTP-MANIFEST.jsonl' is {5 << 30} bytes" in out
    assert f"{TAPE} file 8: manifest unreadable (member 'PYTP-MANIFEST.jsonl' is cut short on tape)" in out
    assert len(_paths(database)) == 5  # the liar's good lines
    # A job whose header lied is not shown as whole (issue 9 probe: it was 'ok', 0 problems).
    liar = next(
        j for j in json.loads(_run(config, "jobs", "--host", "all", "--format", "json").stdout) if j["name"] == "liar"
    )
    assert liar["status"] == "partial"
    assert f"manifest on tape {TAPE} file 2 is damaged" in _run(config, "jobs", str(liar["id"])).stdout
    # 500 bad lines: the first 50 are listed, then a count.
    assert out.count(f"{TAPE} file 9 line ") == 50
    assert f"{TAPE} file 9: and 450 more bad line(s), not listed" in out
    tapes = [t for t in json.loads(_run(config, "tapes", "--format", "json").stdout) if t["label"]]  # not the blanks
    assert tapes[0]["tape_files"] == 10


def _claims_size(name: str, size: int) -> bytes:
    """A one-member tar header that claims ``size`` bytes, followed by far fewer."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.PAX_FORMAT) + b"{}\n" * 100


def test_labels_that_lie(tmp_path: Path) -> None:
    config, library, database = _site(tmp_path, tapes=4)
    archive = _archive()
    honest = make_label("PYT001L9")
    write_tape(library_tape(library, "PYT001L9"), job_files("PYT001L9", 1, [("/data", archive)]), label=honest)
    # Tape 2 claims tape 1's identity; tape 3's label says the wrong block size
    # and has a creation time of the wrong type.
    twin = make_label("PYT002L9")
    write_tape(
        library_tape(library, "PYT002L9"),
        job_files("PYT002L9", 1, [("/data", archive)]),
        label=type(twin)(**{**twin.__dict__, "uuid": honest.uuid}),
    )
    odd = make_label("PYT003L9")
    write_tape(
        library_tape(library, "PYT003L9"),
        job_files("PYT003L9", 1, [("/data", archive)]),
        label=json.dumps({"pytp_volume_label": {**odd.__dict__, "block_size": 65536, "created": 17}}).encode(),
    )

    newer = make_label("PYT004L9")
    write_tape(
        library_tape(library, "PYT004L9"),
        job_files("PYT004L9", 1, [("/data", archive)]),
        label=type(newer)(**{**newer.__dict__, "format_version": 2}),
    )

    out = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout

    assert "PYT002L9 file 0: its label 'PYT002L9' carries the uuid of tape PYT001L9" in out
    assert "PYT003L9 file 0: the volume label says block size 65536, but the tape reads at 524288" in out
    assert "PYT003L9 file 0: the volume label's creation time 17 is not a time" in out
    assert "PYT004L9 file 0: the volume label says on-tape format 2; this pytp reads format 1 only" in out
    tapes = {t["label"]: t for t in json.loads(_run(config, "tapes", "--format", "json").stdout) if t["label"]}
    assert sorted(tapes) == ["PYT001L9", "PYT003L9"]
    assert len(json.loads(_run(config, "jobs", "--host", "all", "--format", "json").stdout)) == 2
    # Tape 3 was imported at the block size it really has: its files restore.
    target = tmp_path / "target"
    _run(config, "restore", str(target), "--match", "/data/two.txt", "--host", "all")  # crafted by host "crafted"
    assert (target / "data" / "two.txt").read_bytes() == b"two\n" * 1000
    assert os.listdir(target) == ["data"]


def test_a_forged_tape_claiming_a_known_job_is_refused_not_merged(tmp_path: Path) -> None:
    """A second tape that copies a job's manifest (its uuid) to slip other content into it (issue 9 probe)."""
    config, library, database = _site(tmp_path, tapes=2)
    job_uuid = "0f0f0f0f-1111-2222-3333-444444444444"
    write_tape(
        library_tape(library, "PYT001L9"),
        job_files("PYT001L9", 1, [("/data", _archive())], job_uuid=job_uuid, name="real"),
        label="PYT001L9",
    )
    evil = tar_bytes([dir_member("data/"), file_member("data/one.txt", b"EVIL\n")])
    write_tape(
        library_tape(library, "PYT002L9"),
        job_files("PYT002L9", 1, [("/data", evil)], job_uuid=job_uuid, name="real"),
        label="PYT002L9",
    )

    for _ in range(2):  # from an empty catalog, then into one that has the job
        out = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout
        assert (
            "PYT002L9 file 2: it puts '/data' of job 1 on tape PYT002L9 file 1, where the catalog has it on tape "
            "PYT001L9 file 1: a forged or mixed-up manifest, nothing of it imported"
        ) in out

    (job,) = json.loads(_run(config, "jobs", "--host", "all", "--format", "json").stdout)
    assert job["status"] == "ok" and job["tapes"] == ["PYT001L9"]
    assert len(_paths(database)) == 5  # the real members, once; nothing recovered from the forged headers
    target = tmp_path / "target"
    _run(config, "restore", str(target), "--match", "/data/one.txt", "--host", "all")
    assert (target / "data" / "one.txt").read_bytes() == b"one\n"


def test_jobs_rebuilt_under_another_host_name_are_pointed_at_not_hidden(tmp_path: Path, monkeypatch) -> None:
    """A catalog rebuilt on a replacement machine: its jobs are another host's (issue 9 probe: 'No jobs yet.')."""
    monkeypatch.setenv("PYTP_HOSTNAME", "newbox")
    config, library, _ = _site(tmp_path)
    write_tape(library_tape(library, TAPE), job_files(TAPE, 1, [("/data", _archive())]), label=TAPE)  # host "crafted"

    out = _run(config, "catalog", "rebuild", "--all", "-d", "d0").stdout

    assert "note: jobs added of other hosts than this one (newbox): crafted (1 job(s))" in out
    hint = "Only host newbox's jobs were looked at; other hosts have some: crafted (1 job(s)). Add --host all"
    assert hint in _run(config, "jobs").stdout
    assert hint in _run(config, "search", "one.txt", expect=11).stderr
    assert hint in _run(config, "restore", str(tmp_path / "t"), "--match", "/data/one.txt", expect=11).stderr
    assert hint in _run(config, "verify", expect=11).stderr
    assert "crafted" in _run(config, "jobs", "--host", "all").stdout


def test_a_data_file_longer_than_its_manifest_says_is_a_problem_and_the_job_partial(tmp_path: Path) -> None:
    config, library, _ = _site(tmp_path)
    archive = _archive()
    files = job_files(TAPE, 1, [("/data", archive)], name="understated")  # the manifest says one block
    files[0] = archive.ljust(2 * DEFAULT_BLOCK_SIZE, b"\0")  # the tape file has two
    write_tape(library_tape(library, TAPE), files, label=TAPE)

    out = _run(config, "catalog", "rebuild", "--all", "-d", "d0", expect=EXIT_VERIFY_FAILED).stdout

    assert f"{TAPE} file 1: holds more blocks than the 1 its manifest names" in out
    (job,) = json.loads(_run(config, "jobs", "--host", "all", "--format", "json").stdout)
    assert job["status"] == "partial"
