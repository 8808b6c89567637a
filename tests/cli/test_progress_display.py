"""The progress line on a terminal (cli/progress_display.py, issue 11 part 4).

The display is driven with a clock of the test's own, so the rate limit and
the ETA are checked exactly; the commands are run through CliRunner (not a
terminal) to check that nothing is drawn on a pipe and that --verbose lists
files anyway.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from pytp.catalog.progress import NULL, CountingProgress, Progress
from pytp.cli.progress_display import REDRAWS_PER_SECOND, TerminalProgress, make_progress
from tests.cli.runner import invoke
from tests.conftest import write_library_config

BLOCK = 512 << 10


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_shows_files_bytes_rate_buffer_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    display = TerminalProgress(out, clock=clock)
    display.start("backup", 100, 100 * 10**6)
    clock.now += 10.0
    for _ in range(40):
        display.file("", 10**6)
    display.buffer_fill(0.5)
    line = display.render(clock.now)
    # 40 MB in 10 s: 4.0 MB/s, 60 MB left: 15 s
    assert line == "backup: 40/100 files, 38.1 MiB of ~95.4 MiB, 4.0 MB/s, buffer 50%, ETA 0:00:15"


def test_no_total_means_no_eta_and_files_total_gives_one() -> None:
    clock = Clock()
    display = TerminalProgress(io.StringIO(), clock=clock)
    display.start("backup")
    clock.now += 2.0
    display.bytes(4 * 10**6)
    assert "ETA" not in display.render(clock.now)
    display.start("rebuild", 4, None, unit="tapes")
    clock.now += 30.0
    display.file("", 0)
    assert display.render(clock.now).startswith("rebuild: 1/4 tapes")
    assert display.render(clock.now).endswith("ETA 0:01:30")


def test_redraws_are_rate_limited_and_the_line_is_cleared_at_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    display = TerminalProgress(out, clock=clock)
    display.start("verify", 10_000, None)
    first = display.redraws
    for _ in range(10_000):  # 10,000 files in one second of the test's clock
        display.file("", 100)
        clock.now += 1e-4
    assert display.redraws - first <= REDRAWS_PER_SECOND + 1
    display.done()
    text = out.getvalue()
    assert "\n" not in text  # one line, rewritten with \r
    assert text.endswith("\r")
    assert "verify: " in text


def test_verbose_lists_paths_above_the_line() -> None:
    clock, out = Clock(), io.StringIO()
    display = TerminalProgress(out, verbose=True, clock=clock)
    assert display.wants_paths
    display.start("restore", 2, 20)
    display.file("/a/one", 10)
    display.file("/a/two", 10)
    display.done()
    lines = [line.split("\r")[-1] for line in out.getvalue().split("\n")]
    assert "/a/one" in lines and "/a/two" in lines


def test_make_progress_quiet_pipe_terminal_and_forced() -> None:
    assert make_progress(quiet=True, verbose=True, show_progress=True, stream=Tty()) is None
    assert make_progress(quiet=False, verbose=False, stream=io.StringIO()) is None  # a pipe: nothing
    shown = make_progress(quiet=False, verbose=False, stream=Tty())
    assert isinstance(shown, TerminalProgress) and shown.line and not shown.wants_paths
    listed = make_progress(quiet=False, verbose=True, stream=io.StringIO())
    assert isinstance(listed, TerminalProgress) and not listed.line and listed.wants_paths
    forced = make_progress(quiet=False, verbose=False, show_progress=True, stream=io.StringIO())
    assert isinstance(forced, TerminalProgress) and forced.line
    assert make_progress(quiet=False, verbose=False, show_progress=False, stream=Tty()) is None


def test_listeners_satisfy_the_protocol() -> None:
    for listener in (NULL, CountingProgress(), TerminalProgress(io.StringIO())):
        assert isinstance(listener, Progress)


def _site(tmp_path: Path, sqlite_url: str) -> tuple[Path, Path]:
    site = write_library_config(tmp_path / "site", sqlite_url, block_size=BLOCK)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(5):
        (src / "d" / f"f{i}").write_bytes(os.urandom(1000 * (i + 1)))
    return site, src


def test_commands_draw_nothing_on_a_pipe_but_verbose_lists_files(tmp_path: Path, sqlite_url: str) -> None:
    site, src = _site(tmp_path, sqlite_url)
    quiet = invoke(site, "backup", str(src))
    assert "\r" not in quiet.stderr and "f3" not in quiet.stderr
    listed = invoke(site, "backup", str(src), "--verbose", "--format", "json")
    assert str(src / "d" / "f3") in listed.stderr
    assert str(src / "d" / "f3") not in listed.stdout  # stdout stays the JSON summary
    verified = invoke(site, "verify", "--verbose")
    assert str(src / "d" / "f4") in verified.stderr
    restored = invoke(site, "restore", str(tmp_path / "out"), "--job", "1", "-v")
    assert str(src / "d" / "f0") in restored.stderr
    assert "tape " in restored.stderr  # the note when a tape is mounted


def test_commands_draw_the_line_when_asked(tmp_path: Path, sqlite_url: str) -> None:
    site, src = _site(tmp_path, sqlite_url)
    invoke(site, "backup", str(src))
    second = invoke(site, "backup", str(src), "--progress")
    # The second run of the same job has the first as its estimate: a total to count against.
    assert "\rbackup: " in second.stderr and "/7 files" in second.stderr
    verified = invoke(site, "verify", "--progress", "--quiet")
    assert "\r" not in verified.stderr
    rebuilt = invoke(site, "catalog", "rebuild", "--all", "--progress")
    assert "rebuild: " in rebuilt.stderr and "tapes" in rebuilt.stderr
