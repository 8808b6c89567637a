"""The lazy command table (issue 9): it says what the modules define, and a module is imported only when used.

``COMMAND_TABLE`` in ``cli/main.py`` is what ``pytp --help`` shows without
importing a command module; these tests keep it equal to the modules'
``COMMANDS`` lists, so it cannot drift.  What each real command imports in a
fresh interpreter is checked by ``test_startup_imports.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

import pytp.cli
from pytp.cli.app import PytpGroup
from pytp.cli.help_format import first_sentence, spell_out_summaries
from pytp.cli.lazy_commands import CommandEntry, LazyCommands
from pytp.cli.main import COMMAND_TABLE, cli


def defined_commands() -> list[CommandEntry]:
    """Every command of every ``pytp.cli`` module with a ``COMMANDS`` list, as the table would list it."""
    entries = []
    for info in pkgutil.iter_modules(pytp.cli.__path__, "pytp.cli."):
        module = importlib.import_module(info.name)
        for command in getattr(module, "COMMANDS", ()):
            spell_out_summaries(command)
            entries.append(CommandEntry(command.name, info.name, first_sentence(command), command.hidden))
    return entries


def test_the_table_lists_every_command_the_modules_define() -> None:
    key = lambda entry: (entry.module, entry.name)  # noqa: E731 - the modules' order is the table's concern
    assert sorted(COMMAND_TABLE, key=key) == sorted(defined_commands(), key=key)
    assert len({entry.name for entry in COMMAND_TABLE}) == len(COMMAND_TABLE)


def test_every_alias_names_a_command_of_the_table() -> None:
    names = {entry.name for entry in COMMAND_TABLE}
    assert set(PytpGroup.aliases.values()) <= names
    assert not set(PytpGroup.aliases) & names


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A command module ``fake_cmd`` with two commands, counted when imported."""
    name = "tests_lazy_fake_cmd"
    imports: list[str] = []

    class Finder:
        """Makes ``import tests_lazy_fake_cmd`` build the module, and records that it happened."""

        @staticmethod
        def find_spec(fullname, path=None, target=None):  # type: ignore[no-untyped-def]
            if fullname != name:
                return None
            import importlib.machinery

            return importlib.machinery.ModuleSpec(name, Finder)

        @staticmethod
        def create_module(spec):  # type: ignore[no-untyped-def]
            imports.append(spec.name)
            module = types.ModuleType(spec.name)
            module.COMMANDS = [  # type: ignore[attr-defined]
                click.Command("alpha", help="First. More."),
                click.Command("beta", help="Second.", hidden=True),
            ]
            return module

        @staticmethod
        def exec_module(module):  # type: ignore[no-untyped-def]
            pass

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    assert imports in ([], [name])  # never imported twice
    sys.modules.pop(name, None)


def _group(module: str) -> PytpGroup:
    entries = [CommandEntry("alpha", module, "First."), CommandEntry("beta", module, "Second.", hidden=True)]
    return PytpGroup(name="pytp", lazy_commands=entries)


def test_names_help_and_unknown_commands_import_nothing(fake_module: str) -> None:
    group = _group(fake_module)
    assert list(group.commands) == ["alpha", "beta"] and "beta" in group.commands and len(group.commands) == 2
    help_text = CliRunner().invoke(group, ["--help"], prog_name="pytp").stdout
    assert "alpha  First." in help_text and "beta" not in help_text  # hidden, from the table alone
    wrong = CliRunner().invoke(group, ["alph"], prog_name="pytp")
    assert wrong.exit_code == 2 and "No such command 'alph'. Did you mean 'alpha'?" in wrong.stderr
    assert fake_module not in sys.modules


def test_a_command_imports_its_module_once_with_all_its_commands(fake_module: str) -> None:
    group = _group(fake_module)
    alpha = group.commands["alpha"]
    assert fake_module in sys.modules
    assert alpha.short_help == "First."  # spelled out as add_command does
    assert group.commands["beta"] is sys.modules[fake_module].COMMANDS[1]
    assert group.get_command(click.Context(group), "gamma") is None
    with pytest.raises(KeyError):
        group.commands["gamma"]


def test_a_table_entry_its_module_lacks_is_no_command(fake_module: str) -> None:
    group = PytpGroup(name="pytp", lazy_commands=[CommandEntry("gone", fake_module, "Gone.")])
    assert group.get_command(click.Context(group), "gone") is None


def test_added_commands_sit_beside_the_table(fake_module: str) -> None:
    group = _group(fake_module)
    own = click.Command("alpha", help="Replaced.")
    group.add_command(own)
    group.add_command(click.Command("zz-new", help="Added later."))
    assert list(group.commands) == ["alpha", "beta", "zz-new"]
    assert group.commands["alpha"] is own  # what was added by hand wins over the module's
    assert group.commands["beta"].name == "beta"
    del group.commands["zz-new"]
    assert "zz-new" not in group.commands and len(group.commands) == 2


def test_the_real_group_is_lazy() -> None:
    assert isinstance(cli.commands, LazyCommands)
    assert [entry.name for entry in COMMAND_TABLE] == list(cli.commands)[: len(COMMAND_TABLE)]
