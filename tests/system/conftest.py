"""Fixtures for the system tests: a guest image and tgt tape libraries.

Every test under ``tests/system`` gets the ``system`` marker
(``pytest -m "not system"`` leaves them out). When a piece is missing
(tgtd, QEMU, the kernel download), the tests are skipped with a loud reason;
with ``CI`` set in the environment they fail instead, because there a
missing piece is a broken set-up (``.ci/install-system-test-deps.sh``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from . import harness

HERE = Path(__file__).resolve().parent

LibraryFactory = Callable[[harness.LibrarySpec], harness.TapeLibrary]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session, not only ours.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.system)


def unavailable(reason: str) -> NoReturn:
    """Skip (or, in CI, fail) because the system-test set-up is incomplete."""
    message = f"SYSTEM TESTS NOT RUN: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def guest_image() -> harness.GuestImage:
    """The guest's kernel and initramfs, built once and cached across runs."""
    missing = harness.missing_prerequisites()
    if missing:
        unavailable("missing " + "; ".join(missing) + f" ({harness.INSTALL_HINT})")
    try:
        return harness.prepare_guest()
    except harness.HarnessUnavailable as e:
        unavailable(str(e))


@contextlib.contextmanager
def _library_factory(workdir: Path) -> Iterator[LibraryFactory]:
    with contextlib.ExitStack() as stack:
        count = 0

        def start(spec: harness.LibrarySpec) -> harness.TapeLibrary:
            nonlocal count
            count += 1
            try:
                return stack.enter_context(harness.TapeLibrary(spec, workdir=workdir / f"tgt{count}"))
            except harness.HarnessUnavailable as e:
                unavailable(str(e))

        yield start


@pytest.fixture
def library_factory(tmp_path: Path) -> Iterator[LibraryFactory]:
    """Start tgt libraries for one test; all are stopped when it ends."""
    with _library_factory(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_library_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibraryFactory]:
    """Start tgt libraries shared by a module's tests (one guest boot, many checks)."""
    with _library_factory(tmp_path_factory.mktemp("tgt")) as start:
        yield start
