"""Running ``pytp`` through CliRunner with a configuration file, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from pytp.cli.main import cli


def invoke(config: Path, *args: str, expect: int = 0) -> Result:
    """``pytp --config CONFIG ARGS…``; asserts the exit code ``expect``."""
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == expect, (result.output, result.stderr)
    return result
