"""Restores stay inside their target (issue 8, defect 1): real backups, crafted
hostile tapes through `catalog rebuild` + `restore --job` and the raw
`restore DIR`, GNU tar doing the extraction, at pytp's default 512 KiB blocks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytp.cli.main import cli
from pytp.tapeio import exitcodes
from tests.conftest import write_library_config
from tests.crafted_tape import (
    DEFAULT_BLOCK_SIZE,
    dir_member,
    file_member,
    job_files,
    library_tape,
    link_member,
    tar_bytes,
    write_tape,
)

TAPE = "PYT001L9"


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    """A one-drive virtual library at the default block size."""
    config = write_library_config(tmp_path / "site", sqlite_url, drives=1, block_size=DEFAULT_BLOCK_SIZE)
    return config


@pytest.fixture
def run(site: Path):  # type: ignore[no-untyped-def]
    def invoke(*args: str, expect: int | None = 0):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, ["--config", str(site), *args], catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, (result.output, result.stderr)
        return result

    return invoke


def outside_files(victim: Path) -> set[str]:
    return {str(p.relative_to(victim)) for p in victim.rglob("*")}


# ---------------------------------------------------------------- a real backup


def test_issue_repro_symlink_to_outside_in_a_real_backup(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The issue's reproduction: a later source root below a symlink of an earlier one."""
    t = tmp_path / "t"
    (t / "src").mkdir(parents=True)
    (t / "elsewhere" / "data").mkdir(parents=True)
    (t / "elsewhere" / "data" / "file1.txt").write_text("precious\n")
    (t / "src" / "link").symlink_to(t / "elsewhere")
    run("backup", str(t / "src"), str(t / "src" / "link" / "data"), "--job", "legit")
    (t / "elsewhere" / "data" / "file1.txt").unlink()
    (t / "elsewhere" / "data").rmdir()

    out = tmp_path / "out"
    result = run("restore", str(out), "--match", "*", expect=None)
    assert not (t / "elsewhere" / "data").exists(), "the restore wrote outside its target"
    assert outside_files(t / "elsewhere") == set()
    # The data came back inside the target; the symlink could not take its place and is named.
    inside = out / str(t).lstrip("/") / "src" / "link" / "data" / "file1.txt"
    assert inside.read_text() == "precious\n"
    assert result.exit_code == exitcodes.EXIT_RESTORE_REFUSED, result.output
    assert "src/link" in result.stderr and "directory is in the place" in result.stderr


def test_overwrite_replaces_a_symlink_in_the_target_not_the_file_it_points_to(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("from tape\n")
    run("backup", str(src))
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.txt").write_text("outside\n")
    out = tmp_path / "out"
    restored = out / str(src).lstrip("/")
    restored.mkdir(parents=True)
    (restored / "a.txt").symlink_to(victim / "a.txt")
    run("restore", str(out), "--match", "a.txt", "--overwrite")
    assert (victim / "a.txt").read_text() == "outside\n"
    assert not (restored / "a.txt").is_symlink()
    assert (restored / "a.txt").read_text() == "from tape\n"


def test_overwrite_over_an_existing_tree_keeps_directories_and_verifies(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    """Defect 5: `restore --overwrite` over a tree restored before exited 3."""
    from tests.conftest import make_tree

    src = make_tree(tmp_path / "src", big_file=1 << 20)
    run("backup", str(src))
    out = tmp_path / "out"
    run("restore", str(out), "--job", "1")
    changed = out / str(src).lstrip("/") / "docs" / "report.txt"
    changed.chmod(0o644)
    changed.write_text("changed since\n")
    result = run("restore", str(out), "--job", "1", "--overwrite")
    assert "checksum(s) verified" in result.output
    assert changed.read_text() == "quarterly report\n"
    assert (out / str(src).lstrip("/") / "link-to-report").is_symlink()


# ---------------------------------------------------------------- crafted tapes


def crafted(site: Path, archives: list[tuple[str, bytes]]) -> None:
    """One job of raw tar archives (one per tape file) with a matching manifest, on PYT001L9."""
    write_tape(library_tape(site.parent / "lib", TAPE), job_files(TAPE, 1, archives), label=TAPE)


def chain_archives(victim: Path) -> list[tuple[str, bytes]]:
    return [
        ("/x", tar_bytes([link_member("x", str(victim))])),
        ("/x/pwned.txt", tar_bytes([file_member("x/pwned.txt", b"pwned\n")])),
    ]


def test_symlink_from_one_tape_file_is_not_followed_by_the_next(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    crafted(site, chain_archives(victim))
    run("catalog", "rebuild", "--all")
    out = tmp_path / "out"
    result = run("restore", str(out), "--job", "1", expect=None)
    assert outside_files(victim) == set(), "the restore wrote through a symlink from tape"
    assert result.exit_code == exitcodes.EXIT_RESTORE_REFUSED, result.output
    assert "x" in result.stderr


def test_overwrite_never_replaces_a_file_outside_the_target(run, site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "pwned.txt").write_text("keep me\n")
    crafted(site, chain_archives(victim))
    run("catalog", "rebuild", "--all")
    out = tmp_path / "out"
    run("restore", str(out), "--job", "1", "--overwrite", expect=exitcodes.EXIT_RESTORE_REFUSED)
    # Twice: the second time the first restore's results are in the target.
    run("restore", str(out), "--job", "1", "--overwrite", expect=exitcodes.EXIT_RESTORE_REFUSED)
    assert (victim / "pwned.txt").read_text() == "keep me\n"
    assert outside_files(victim) == {"pwned.txt"}


def raw_restore(run, out: Path, tape_file: int, expect: int | None):  # type: ignore[no-untyped-def]
    run("rewind")
    run("ff", str(tape_file))
    return run("restore", str(out), expect=expect)


def test_raw_restore_dir_is_confined_across_tape_files(run, site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    crafted(site, chain_archives(victim))
    run("load", "1")
    out = tmp_path / "out"
    raw_restore(run, out, 1, 0)
    assert (out / "x").is_symlink()
    result = raw_restore(run, out, 2, exitcodes.EXIT_RESTORE_REFUSED)
    assert outside_files(victim) == set()
    assert "x/pwned.txt" in result.stderr and "symlink" in result.stderr


def hostile_archive(victim: Path) -> bytes:
    setuid, data = file_member("setuid-tool", b"#!/bin/sh\n", mode=0o4755)
    device = tarfile.TarInfo("dev-null")
    device.type, device.devmajor, device.devminor, device.mode = tarfile.CHRTYPE, 1, 3, 0o666
    fifo = tarfile.TarInfo("a-fifo")
    fifo.type = tarfile.FIFOTYPE
    return tar_bytes(
        [
            dir_member("ok"),
            file_member("ok/fine.txt", b"fine\n"),
            file_member("../escape.txt", b"escaped\n"),
            file_member(str(victim / "absolute.txt"), b"absolute\n"),
            link_member("hard-out", "../../" + str(victim / "target.txt").lstrip("/"), hard=True),
            link_member("hard-abs", str(victim / "target.txt"), hard=True),
            link_member("hard-ok", "ok/fine.txt", hard=True),
            (setuid, data),
            (device, None),
            (fifo, None),
        ]
    )


def check_hostile_result(out: Path, victim: Path, stderr: str) -> None:
    assert outside_files(victim) == {"target.txt"}
    assert not (out.parent / "escape.txt").exists()
    assert (out / "ok" / "fine.txt").read_text() == "fine\n"
    assert (out / "hard-ok").stat().st_ino == (out / "ok" / "fine.txt").stat().st_ino
    assert not (out / "hard-out").exists() and not (out / "hard-abs").exists()
    assert (victim / "target.txt").stat().st_nlink == 1
    mode = (out / "setuid-tool").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) and mode & 0o755 == 0o755
    assert not (out / "dev-null").exists() and not (out / "a-fifo").exists()
    for name in ("escape.txt", "absolute.txt", "hard-out", "hard-abs", "dev-null", "a-fifo"):
        assert name in stderr, name


def test_raw_restore_refuses_dotdot_absolute_links_out_devices_and_clears_setuid(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "target.txt").write_text("secret\n")
    crafted(site, [("/", hostile_archive(victim))])
    run("load", "1")
    out = tmp_path / "area" / "out"
    result = raw_restore(run, out, 1, exitcodes.EXIT_RESTORE_REFUSED)
    check_hostile_result(out, victim, result.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes need root")
def test_allow_special_keeps_devices_and_setuid_as_root(run, site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "target.txt").write_text("secret\n")
    crafted(site, [("/", hostile_archive(victim))])
    run("load", "1")
    out = tmp_path / "area" / "out"
    run("rewind")
    run("ff", "1")
    run("restore", str(out), "--allow-special", expect=exitcodes.EXIT_RESTORE_REFUSED)
    assert stat.S_ISCHR((out / "dev-null").lstat().st_mode)
    assert (out / "setuid-tool").stat().st_mode & stat.S_ISUID
    assert outside_files(victim) == {"target.txt"}


def test_catalog_restore_of_a_hostile_tape_restores_the_rest_and_names_each_refusal(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "target.txt").write_text("secret\n")
    crafted(site, [("/", hostile_archive(victim))])
    run("catalog", "rebuild", "--all", expect=None)
    out = tmp_path / "area" / "out"
    result = run("restore", str(out), "--job", "1", expect=None)
    assert result.exit_code == exitcodes.EXIT_RESTORE_REFUSED, (result.output, result.stderr)
    assert outside_files(victim) == {"target.txt"}
    assert not (tmp_path / "area" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert (out / "ok" / "fine.txt").read_text() == "fine\n"
    assert not (out / "setuid-tool").stat().st_mode & stat.S_ISUID
    assert "dev-null" in result.stderr and "a-fifo" in result.stderr
    print(result.stderr)


# ---------------------------------------------------------------- no catalog for raw commands


@pytest.mark.parametrize("command", [["ls"], ["restore", "OUT"]])
def test_raw_commands_do_not_import_the_catalog_stack(site: Path, tmp_path: Path, command: list[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("x\n")
    CliRunner().invoke(cli, ["--config", str(site), "backup", str(src), "--keep-loaded"], catch_exceptions=False)
    CliRunner().invoke(cli, ["--config", str(site), "rewind"], catch_exceptions=False)
    CliRunner().invoke(cli, ["--config", str(site), "ff", "1"], catch_exceptions=False)
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    script = (
        "import sys\n"
        "from pytp.cli.main import cli\n"
        f"try:\n    cli.main({['--config', str(site), *args]!r})\n"
        "except SystemExit as e:\n    code = e.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlmodel', 'sqlalchemy', 'alembic'))\n"
        "print('LOADED', loaded)\n"
        "sys.exit(code or 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
    if command[0] == "restore":
        assert (tmp_path / "out" / str(src / "f.txt").lstrip("/")).read_text() == "x\n"
    else:
        assert "f.txt" in proc.stdout


def _capability_blob(tmp_path: Path) -> bytes | None:
    """A real ``security.capability`` value (cap_net_raw+ep), or None where files cannot carry one."""
    probe = tmp_path / "probe"
    probe.touch()
    try:
        subprocess.run(["setcap", "cap_net_raw+ep", str(probe)], check=True, capture_output=True)
        return os.getxattr(probe, "security.capability")
    except (OSError, subprocess.CalledProcessError):
        return None


def test_file_capabilities_from_tape_need_allow_special(run, site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A capability is a privilege like setuid: cleared unless --allow-special (as root)."""
    from pytp.tapeio.tarformat import END_OF_ARCHIVE, MemberHeader, build_header

    blob = _capability_blob(tmp_path)
    if blob is None or os.geteuid() != 0:
        pytest.skip("this filesystem or user cannot set file capabilities")
    data = b"#!/bin/sh\n"
    header = build_header(
        MemberHeader(name=b"tool", kind="file", size=len(data), mode=0o755, xattrs=((b"security.capability", blob),))
    )
    archive = header + data.ljust(512, b"\0") + END_OF_ARCHIVE
    crafted(site, [("/", archive)])
    run("load", "1")
    plain, special = tmp_path / "plain", tmp_path / "special"
    raw_restore(run, plain, 1, 0)
    with pytest.raises(OSError):
        os.getxattr(plain / "tool", "security.capability")
    run("rewind")
    run("ff", "1")
    run("restore", str(special), "--allow-special")
    assert os.getxattr(special / "tool", "security.capability") == blob


def test_setuid_from_a_real_backup_is_cleared_with_a_note_and_kept_with_allow_special(  # type: ignore[no-untyped-def]
    run, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_text("#!/bin/sh\n")
    (src / "tool").chmod(0o4755)
    run("backup", str(src))
    result = run("restore", str(tmp_path / "plain"), "--job", "1")
    assert "without their setuid/setgid/sticky bits" in result.output and "tool" in result.output
    assert (tmp_path / "plain" / str(src).lstrip("/") / "tool").stat().st_mode & 0o7777 == 0o755
    if os.geteuid() == 0:
        run("restore", str(tmp_path / "special"), "--job", "1", "--allow-special")
        assert (tmp_path / "special" / str(src).lstrip("/") / "tool").stat().st_mode & 0o7777 == 0o4755
    else:
        run(
            "restore", str(tmp_path / "special"), "--job", "1", "--allow-special", expect=exitcodes.EXIT_RESTORE_REFUSED
        )


def test_raw_restore_overwrite_with_a_directory_twice_in_the_archive(run, site: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """GNU tar alone fails here ('Cannot unlink: Directory not empty'); the guard gives it each directory once."""
    archive = tar_bytes([dir_member("a"), file_member("a/f.txt", b"one\n"), dir_member("a")])
    crafted(site, [("/", archive)])
    run("load", "1")
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "old.txt").write_text("kept\n")
    run("rewind")
    run("ff", "1")
    run("restore", str(out), "--overwrite")
    assert (out / "a" / "f.txt").read_text() == "one\n" and (out / "a" / "old.txt").read_text() == "kept\n"


def _member_bytes(info: tarfile.TarInfo, data: bytes) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


@pytest.mark.parametrize("claim", [(8 << 30) - 1, 10**20], ids=["ustar-8GiB", "pax-1e20"])
def test_a_member_claiming_more_than_its_tape_file_holds_is_named_and_nothing_is_made_up(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path, claim: int
) -> None:
    """A hostile header's size: the rest was fed to tar as zeros, an 8 GiB file made from
    a tape file of one block (the target's disk filled), and a pax size of 10**20 fed
    tar after tar forever."""
    intact, data = file_member("ok/a", b"intact\n")
    liar = tarfile.TarInfo("ok/liar")
    liar.size, liar.mtime = claim, 1_700_000_000
    write_tape(
        library_tape(site.parent / "lib", TAPE),
        [_member_bytes(intact, data) + _member_bytes(liar, b"x" * 1024)],
        label=TAPE,
    )
    run("load", "1")
    run("rewind")
    run("ff", "1")
    out = tmp_path / "out"
    # a process of its own, with a time limit: the old code never ended on the second claim
    done = subprocess.run(
        [sys.executable, "-m", "pytp.cli.main", "--config", str(site), "restore", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == exitcodes.EXIT_VERIFY_FAILED, done.stdout + done.stderr
    assert "ok/liar" in done.stderr and "before the end of" in done.stderr
    assert (out / "ok" / "a").read_bytes() == b"intact\n"
    assert not (out / "ok" / "liar").exists()  # what tar wrote of it is removed, nothing made up


def _pax_record(key: str, value: str) -> bytes:
    """``LENGTH key=value\\n``, LENGTH counting itself."""
    text = f" {key}={value}\n".encode()
    length = len(text) + 1
    while len(str(length)) + len(text) != length:
        length += 1
    return str(length).encode() + text


@pytest.mark.parametrize("records", [{"path": "../../tmp/EVIL_global"}, {"comment": "git archive's commit id"}])
def test_a_global_pax_header_is_not_applied_and_named_unless_it_is_a_comment(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path, records: dict[str, str]
) -> None:
    """GNU tar applies a global header's records to every later member; the guard leaves them
    out, so the user is told when that changes what tar would have made (docs/format.md)."""
    before, before_data = file_member("ok/a", b"a\n")
    after, after_data = file_member("ok/g", b"g\n")
    body = b"".join(_pax_record(key, value) for key, value in records.items())
    header = tarfile.TarInfo("pax_global_header")
    header.type, header.size = tarfile.XGLTYPE, len(body)
    global_header = header.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512)
    archive = _member_bytes(before, before_data) + global_header + _member_bytes(after, after_data)
    write_tape(library_tape(site.parent / "lib", TAPE), [archive + b"\0" * 1024], label=TAPE)
    run("load", "1")
    out = tmp_path / "out"
    named = "path" in records
    result = raw_restore(run, out, 1, exitcodes.EXIT_RESTORE_REFUSED if named else 0)
    assert (out / "ok" / "g").read_bytes() == b"g\n"  # under its own name
    assert ("global pax header" in result.stderr) == named, result.stderr
    assert not (tmp_path / "tmp").exists() and not (out / "tmp").exists()


def test_ls_and_raw_restore_where_there_is_no_tape_file_data_say_so_in_one_line(  # type: ignore[no-untyped-def]
    run, site: Path, tmp_path: Path
) -> None:
    """At the end of the data `ls` printed tar's two-line complaint (exit 3) and the raw
    restore 'Extracted 0 member(s)' with exit 0, as if that were the tape file."""
    write_tape(library_tape(site.parent / "lib", TAPE), [os.urandom(4096)], label=TAPE)
    run("load", "1")
    for args in (("ls",), ("restore", str(tmp_path / "out"))):
        run("rewind")
        run("ff", "2")  # past the one tape file: the end of the recorded data
        result = run(*args, expect=exitcodes.EXIT_NOT_FOUND)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "No tape file data at the head" in errors[0], result.stderr
    run("rewind")
    run("ff", "1")  # random bytes: tar's complaint, in one line
    result = run("ls", expect=exitcodes.EXIT_ERROR)
    assert len(result.stderr.strip().splitlines()) == 1 and "does not look like a tar archive" in result.stderr
