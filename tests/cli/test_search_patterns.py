"""Patterns the shell and Python's ``re`` read in ways the index's literal
extraction and the glob translation must follow (issue 9's search, as an
attacker and a careful user type them), on the embedded default site:
search is exact, bad input is exit 2, Ctrl-C is exit 130."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytp.catalog.errors import BadPattern
from pytp.catalog.search_query import glob_to_regex, required_literals
from pytp.tapeio.exitcodes import EXIT_INTERRUPTED, EXIT_USAGE

NAMES = ["README", "café.txt", "new\nline", "x]y", "]", "a", "br[acket]", "zz", "a" * 40 + "b", "file001.txt"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    root = tmp_path_factory.mktemp("search-patterns")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTP_")}
    env.update(XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "data"), HOME=str(root))
    src = root / "src"
    src.mkdir()
    for name in NAMES:
        (src / name).write_text(name)
    (src / "bad\\xff").write_text("a name of seven characters, a backslash among them")
    with open(os.fsencode(src) + b"/bad\xff", "w") as raw:
        raw.write("a name of four bytes, not UTF-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytp.cli.main", "backup", str(src), "-q"], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    return env, src


def search(site: tuple[dict[str, str], Path], *args: str, status: int = 0) -> set[str]:
    env, src = site
    argv = [sys.executable, "-m", "pytp.cli.main", "search", *args, "--format", "json", "--limit", "0"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr  # no FutureWarning of re leaks out
    return {row["path"][len(str(src)) + 1 :] for row in json.loads(done.stdout)} if status == 0 else set()


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        (r"\x52EADME", {"README"}),
        (r"R\x45ADME", {"README"}),
        (r"caf\u00e9", {"café.txt"}),
        (r"new\012line", {"new\nline"}),
        (r"\x66ile001", {"file001.txt"}),
        (r"\N{LATIN SMALL LETTER E WITH ACUTE}\.txt", {"café.txt"}),
    ],
)
def test_a_regex_escape_is_a_character_not_its_digits(site, pattern: str, found: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert search(site, "--regex", pattern) == found


@pytest.mark.parametrize(
    ("pattern", "found"),
    [
        ("*/[]a]", {"]", "a"}),  # a ] first is a member of the class, as in the shell
        ("*x[]]y", {"x]y"}),
        ("*/[!]a]", set()),  # one character, neither ] nor a: no such name here
        ("*/br[[]acket[]]", {"br[acket]"}),
        ("*/new?line", {"new\nline"}),  # ? and * cross a newline in a name
        ("*/new*", {"new\nline"}),
        ("*[]", set()),  # nothing closes the [: it is itself
    ],
)
def test_a_glob_bracket_reads_as_the_shell_reads_it(site, pattern: str, found: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert search(site, pattern, status=0 if found else 11) == found


def test_bad_patterns_are_usage_errors(site) -> None:  # type: ignore[no-untyped-def]
    search(site, "", status=EXIT_USAGE)
    search(site, "--regex", "", status=EXIT_USAGE)
    search(site, "*[z-a]", status=EXIT_USAGE)  # a range that ends before it starts
    with pytest.raises(BadPattern):
        glob_to_regex("x[z-a]")


def test_a_glob_with_many_stars_does_not_backtrack_without_end(site) -> None:  # type: ignore[no-untyped-def]
    # ~n^10 steps on the 41-character name with the plain translation (minutes); a
    # class with ^ sends it through REGEXP rather than SQLite's GLOB
    assert search(site, "*a*a*a*a*a*a*a*a*a*a*[b^]") == {"a" * 40 + "b"}


def test_ctrl_c_inside_a_long_regex_exits_130_not_as_a_catalog_error(site) -> None:  # type: ignore[no-untyped-def]
    env, _ = site
    argv = [sys.executable, "-m", "pytp.cli.main", "search", "--regex", "(a+)+$", "--limit", "0"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        time.sleep(3)  # (a+)+$ on 40 a's and a b: 2**40 steps, it is still matching
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "catalog" not in err


def test_required_literals_never_hold_what_a_match_may_lack() -> None:
    assert required_literals(r"\x52EADME", regex=True) == ["EADME"]
    assert required_literals(r"caf\u00e9 au lait", regex=True) == ["caf", " au lait"]
    assert required_literals(r"(ab)\1cde", regex=True) == ["cde"]


def test_a_name_with_a_newline_stays_on_its_row_in_a_table(site) -> None:  # type: ignore[no-untyped-def]
    env, src = site
    argv = [sys.executable, "-m", "pytp.cli.main", "search", "line", "--format", "table"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()[2:]  # after the header and its rule
    assert len(rows) == 1 and f"{src}/new\\nline" in rows[0], done.stdout


def test_a_name_that_is_not_utf8_is_told_apart_from_one_that_shows_the_same(site) -> None:  # type: ignore[no-untyped-def]
    env, src = site
    argv = [sys.executable, "-m", "pytp.cli.main", "search", "bad", "--format", "json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    rows = json.loads(done.stdout)
    assert [row["path"] for row in rows] == [f"{src}/bad\\xff"] * 2  # shown alike
    names = {base64.b64decode(row["path_b64"]) if row["path_b64"] else row["path"].encode() for row in rows}
    assert names == {os.fsencode(src) + b"/bad\xff", os.fsencode(src) + b"/bad\\xff"}
