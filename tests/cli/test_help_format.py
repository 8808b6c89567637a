"""`pytp --help`: commands grouped, with aliases, summaries never cut; one spelling of
`--format json`; and click's shell completion under the name `pytp`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
from click.testing import CliRunner

from pytp.cli.app import PytpGroup
from pytp.cli.help_format import SECTIONS
from pytp.cli.main import cli
from tests.conftest import write_library_config


def help_text(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="pytp", terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.stdout


def section(text: str, title: str) -> list[str]:
    """The command names (first word of each entry) listed under ``title:``."""
    block = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if re.match(r"  \S", line)]


def walk(command: click.Command, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


def test_top_level_help_is_grouped_in_order() -> None:
    text = help_text()
    titles = [title for title, _ in SECTIONS]
    assert [t for t in re.findall(r"^(\S[^\n]*):$", text, re.M) if t in titles] == titles
    assert section(text, "Jobs: back up, restore, verify, find")[:3] == ["backup", "restore", "verify"]
    assert "search" in section(text, "Jobs: back up, restore, verify, find")
    assert {"tapes", "label", "load", "library"} <= set(section(text, "Tapes and libraries"))
    assert {"rewind", "status", "ff", "bb"} <= set(section(text, "Drive"))
    assert section(text, "Catalog administration") == ["catalog", "db"]
    assert "Commands:" not in text  # no flat alphabetical list as well


def test_every_command_is_listed_once_with_its_aliases() -> None:
    text = help_text()
    listed = [name for title, _ in SECTIONS for name in section(text, title)]
    visible = sorted(name for name, cmd in cli.commands.items() if not cmd.hidden)
    assert sorted(listed) == visible
    for alias, name in PytpGroup.aliases.items():
        assert re.search(rf"^  {re.escape(name)} \([^)]*\b{re.escape(alias)}\b[^)]*\)", text, re.M), alias


def test_a_command_outside_the_sections_still_shows(tmp_path: Path) -> None:
    group = PytpGroup(name="pytp")
    group.add_command(click.Command("backup", help="Back up."))
    group.add_command(click.Command("zz-new", help="Something added later."))
    result = CliRunner().invoke(group, ["--help"], prog_name="pytp")
    assert section(result.stdout, "Other") == ["zz-new"]


def test_summaries_are_whole_sentences_never_cut() -> None:
    for path, command in walk(cli):
        if not isinstance(command, click.Group):
            continue
        text = help_text(*path)
        assert "..." not in text.split("\n", 1)[1], f"pytp {' '.join(path)} --help cuts a summary"  # not the usage
        for name, sub in command.commands.items():
            if sub.hidden:
                continue
            sentence = sub.get_short_help_str(limit=1 << 30)
            assert sentence.endswith(".") or sentence.endswith(")"), (name, sentence)
            flat = " ".join(text.split())
            assert " ".join(sentence.split()) in flat, (path, name)
    backup = " ".join(help_text().split())
    assert "Back up DIRS to tape: one tar archive per directory, appended at end of data." in backup


def test_shell_completion_is_documented_and_works() -> None:
    assert "_PYTP_COMPLETE=bash_source pytp" in help_text()
    runner = CliRunner()
    script = runner.invoke(cli, [], prog_name="pytp", env={"_PYTP_COMPLETE": "bash_source"})
    assert "_pytp_completion" in script.stdout
    words = runner.invoke(
        cli, [], prog_name="pytp", env={"_PYTP_COMPLETE": "bash_complete", "COMP_WORDS": "pytp ba", "COMP_CWORD": "1"}
    )
    assert words.stdout.split() == ["plain,backup"]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "_PYTP_COMPLETE=bash_source pytp" in readme


def test_one_spelling_for_json_output(tmp_path: Path, sqlite_url: str) -> None:
    """Every command with machine-readable output says --format json; config's old --json is hidden."""
    for path, command in walk(cli):
        names = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
        visible = {
            opt for param in command.params if isinstance(param, click.Option) and not param.hidden
            for opt in param.opts
        }
        assert "--json" not in visible, f"pytp {' '.join(path)} shows --json"
        if "--json" in names:
            assert "--format" in names, path
    config = write_library_config(tmp_path / "site", sqlite_url)
    runner = CliRunner()
    new = runner.invoke(cli, ["--config", str(config), "config", "--format", "json"])
    assert new.exit_code == 0, new.output
    assert json.loads(new.stdout) == json.loads(config.read_text())
    old = runner.invoke(cli, ["--config", str(config), "config", "--json"])
    assert old.exit_code == 0 and json.loads(old.stdout) == json.loads(new.stdout)
    assert "--json is deprecated: use --format json" in old.stderr
    assert "--json" not in help_text("config")
    assert "Configuration:" in runner.invoke(cli, ["--config", str(config), "config"]).stdout


def test_every_command_has_help_with_an_example() -> None:
    def walk(group, prefix=""):  # type: ignore[no-untyped-def]
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(command, prefix + name + " ")
            else:
                yield prefix + name, command

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, command in walk(cli):
        assert command.help and "Example" in command.help, f"{name} lacks help with an example"
        assert f"`{name}" in readme or f"`{name.split()[-1]}" in readme, f"{name} is not in the README"
