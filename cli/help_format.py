"""``pytp --help``: the commands grouped by what they are for, with their aliases, never cut off.

click lists a group's commands alphabetically and cuts each summary to fit
one line ("Back up DIRS to tape: one tar archive per directory,...").  Here
the top level shows sections in the order a user needs them, each command
with the original pytp's aliases, and every summary is the whole first
sentence of the command's help, wrapped rather than cut (also in sub-groups
such as ``pytp catalog --help``).  A group given a table of its commands
(:class:`~pytp.cli.lazy_commands.CommandEntry`) lists them from the table and
imports a command's module only to run it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from .lazy_commands import CommandEntry, LazyCommands

#: The top-level sections, in the order ``pytp --help`` shows them.  A command
#: not listed here still shows, under the last section.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Jobs: back up, restore, verify, find", ("backup", "restore", "verify", "copy", "scrub", "search", "versions",
                                              "ls-catalog", "jobs", "report")),
    ("Tapes and libraries", ("tapes", "pools", "tape", "label", "vault", "list", "load", "unload", "move", "library")),
    ("Drive", ("drives", "status", "position", "goto", "rewind", "ff", "bb", "ls", "init", "retension", "clean")),
    ("Catalog administration", ("catalog", "db")),
    ("Other", ("config", "exit-codes")),
)

#: How to turn on click's shell completion (also in the README).
COMPLETION = (
    ("bash", 'eval "$(_PYTP_COMPLETE=bash_source pytp)"'),
    ("zsh", 'eval "$(_PYTP_COMPLETE=zsh_source pytp)"'),
    ("fish", "_PYTP_COMPLETE=fish_source pytp | source"),
)


def first_sentence(command: click.Command) -> str:
    """The whole first sentence of the command's help (click's summary, without its length limit)."""
    return command.get_short_help_str(limit=1 << 30)


def spell_out_summaries(command: click.Command) -> None:
    """Give ``command`` and the commands under it their whole first sentence as ``short_help``.

    click never shortens a ``short_help`` it was given, so sub-groups made
    with a plain ``click.group`` list their commands uncut as well.
    """
    if not command.short_help:
        command.short_help = first_sentence(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            spell_out_summaries(sub)


class GroupedHelp(click.Group):
    """The top-level group's help: commands in :data:`SECTIONS`, with aliases, uncut.

    :cvar aliases: alias → command name; each alias is shown next to its command.
    """

    aliases: dict[str, str] = {}

    def __init__(self, *args: Any, lazy_commands: Iterable[CommandEntry] = (), **kwargs: Any) -> None:
        """:param lazy_commands: commands imported only when looked up (see :class:`LazyCommands`)."""
        super().__init__(*args, **kwargs)
        if lazy_commands:
            self.commands = LazyCommands(lazy_commands, on_load=spell_out_summaries)

    def summary(self, ctx: click.Context, name: str) -> str | None:
        """The first sentence of command ``name``, None if it is hidden or unknown; imports nothing if it can."""
        entry = self.commands.entry(name) if isinstance(self.commands, LazyCommands) else None
        if entry is not None:
            return None if entry.hidden else entry.summary
        command = self.get_command(ctx, name)
        return None if command is None or command.hidden else first_sentence(command)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        spell_out_summaries(cmd)
        super().add_command(cmd, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        summaries = {name: self.summary(ctx, name) for name in self.list_commands(ctx)}
        commands = {name: summary for name, summary in summaries.items() if summary is not None}
        by_command: dict[str, list[str]] = {}
        for alias, name in self.aliases.items():
            by_command.setdefault(name, []).append(alias)
        known = {name for _, names in SECTIONS for name in names}
        sections = []
        for index, (title, names) in enumerate(SECTIONS):
            listed = [name for name in names if name in commands]
            if index == len(SECTIONS) - 1:
                listed += sorted(set(commands) - known)  # commands added since SECTIONS was written
            if listed:
                sections.append((title, listed))
        shown = {name: name + (f" ({', '.join(by_command[name])})" if name in by_command else "") for name in commands}
        width = max(map(len, shown.values()), default=0)  # one column for every section
        for title, listed in sections:
            with formatter.section(title):
                formatter.write_dl([(shown[name].ljust(width), commands[name]) for name in listed])
        if ctx.parent is None:  # the top level only
            with formatter.section("Shell completion (add the line to your shell's start-up file)"):
                formatter.write_dl(list(COMPLETION))
