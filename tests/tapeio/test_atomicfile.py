"""The one atomic writer (``tapeio.atomicfile``): old or new file, never half; errors name the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytp.tapeio.atomicfile import write_atomically


@pytest.mark.parametrize("durable", [True, False])
def test_replaces_the_file_and_leaves_no_temporary(tmp_path: Path, durable: bool) -> None:
    path = tmp_path / "state.json"
    path.write_text("old\n")
    write_atomically(path, "new ✓\n", durable=durable)
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failure_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.mkdir()  # the rename over a directory fails
    with pytest.raises(OSError) as err:
        write_atomically(path, "<html>")
    assert err.value.filename == str(path)
    assert path.is_dir() and sorted(os.listdir(tmp_path)) == ["report.html"]
