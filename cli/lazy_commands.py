"""A group's commands, each imported only when it is used (issue 9: fast start-up).

A click group keeps its commands in the dict ``group.commands``.  Filling it
means importing every command module and all they import at module level, for
a command that needs one of them.  :class:`LazyCommands` is that dict, filled
on demand: it knows each command's name, module and summary from a static
table (:data:`pytp.cli.main.COMMAND_TABLE`, checked against the modules by
``tests/cli/test_lazy_commands.py``), lists names and summaries without
importing anything, and imports a module the first time one of its commands is
looked up.  A module registers every command in its ``COMMANDS`` list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import NamedTuple

import click


class CommandEntry(NamedTuple):  # not a dataclass: making one costs ~0.4 ms of every start
    """What ``pytp --help`` shows of a command before its module is imported.

    :param module: the module that defines it, in its ``COMMANDS`` list.
    :param summary: the whole first sentence of its help (``help_format.first_sentence``).
    """

    name: str
    module: str
    summary: str
    hidden: bool = False


class LazyCommands(MutableMapping[str, click.Command]):
    """``name → command`` that imports a command's module on first access.

    Iteration, ``in`` and ``len`` use the table alone, so listing the names
    (help, click's "No such command" suggestion) imports nothing.  Commands
    added with :meth:`click.Group.add_command` are plain entries.

    :param on_load: called with every command a module brings, before it is
        stored (the group's ``add_command`` treatment: summaries spelled out).
    """

    def __init__(self, entries: Iterable[CommandEntry], on_load: Callable[[click.Command], None]) -> None:
        self._entries = {entry.name: entry for entry in entries}
        self._loaded: dict[str, click.Command] = {}
        self._on_load = on_load

    def entry(self, name: str) -> CommandEntry | None:
        """The table's entry for a command not imported yet (None once imported or unknown)."""
        return None if name in self._loaded else self._entries.get(name)

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(module_name)
        for command in module.COMMANDS:
            if command.name not in self._loaded:  # one added or replaced by hand wins
                self._on_load(command)
                self._loaded[command.name] = command

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._entries:
            self._load(self._entries[name].module)
        return self._loaded[name]  # KeyError: unknown, or a table entry its module does not define

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self._loaded and name not in self._entries:
            raise KeyError(name)
        self._loaded.pop(name, None)
        self._entries.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._entries
        yield from (name for name in self._loaded if name not in self._entries)

    def __len__(self) -> int:
        return len(self._entries.keys() | self._loaded.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._loaded
