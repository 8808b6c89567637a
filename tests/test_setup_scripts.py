"""The README's two commands (.ci/setup, .ci/test) and their shared shell library.

The scripts run for real in bash; only the system commands that would touch
the machine (apt-get, sudo, id, dpkg-query, apt-cache) are replaced by stub
scripts on PATH that record how they were called.  The full run on a fresh
clone (stock Debian, root and sudo user) is done by hand: see the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CI = REPO / ".ci"
BASH = shutil.which("bash") or "/bin/bash"


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A bin directory of stubs: a non-root user with sudo on a Debian with tar installed, mtx not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    installed = tmp_path / "installed"
    installed.write_text("tar\n")
    stub(bin_dir, "id", '[ "$1" = -u ] && echo 1000 || /usr/bin/id "$@"')
    stub(bin_dir, "sudo", f'echo "sudo $*" >> {log}; "$@"')
    stub(bin_dir, "apt-cache", "exit 0")
    stub(
        bin_dir,
        "dpkg-query",
        f'p="${{@: -1}}"; grep -qx "$p" {installed} && printf installed || printf not-installed',
    )
    stub(
        bin_dir,
        "apt-get",
        f'echo "apt-get $*" >> {log}\n'
        f"for a; do case $a in -*|install|update) ;; *) echo $a >> {installed};; esac; done",
    )
    return bin_dir


def run_lib(script: str, bin_dir: Path | None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Source .ci/lib.sh in bash -euo pipefail and run ``script``."""
    path = f"{bin_dir}:{os.environ['PATH']}" if bin_dir else os.environ["PATH"]
    return subprocess.run(
        [BASH, "-c", f'set -euo pipefail; source "{CI / "lib.sh"}"; {script}'],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, **(env or {})},
        timeout=300,
    )


def calls(machine: Path) -> list[str]:
    log = machine.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_apt_install_uses_sudo_for_a_user_and_installs_only_what_is_missing(machine: Path) -> None:
    result = run_lib("apt_install tar mt-st mtx", machine)
    assert result.returncode == 0, result.stderr
    assert calls(machine) == [
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mt-st mtx",
        "apt-get install -y -q --no-install-recommends mt-st mtx",  # tar was installed already
    ]
    # Idempotent: a second run installs nothing.
    before = calls(machine)
    assert run_lib("apt_install tar mt-st mtx", machine).returncode == 0
    assert calls(machine) == before


def test_apt_install_as_root_calls_apt_directly(machine: Path) -> None:
    stub(machine, "id", '[ "$1" = -u ] && echo 0 || /usr/bin/id "$@"')
    assert run_lib("apt_install mtx", machine).returncode == 0
    assert calls(machine) == ["apt-get install -y -q --no-install-recommends mtx"]


def test_a_user_without_sudo_is_told_what_to_do(machine: Path) -> None:
    (machine / "sudo").unlink()
    (machine / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    result = run_lib("apt_install mtx", machine, {"PATH": str(machine)})  # no sudo anywhere on PATH
    assert result.returncode != 0
    assert calls(machine) == []
    assert "needs root: run this as root, or install sudo" in result.stderr


def test_missing_python3_venv_is_installed_and_the_venv_made_again(machine: Path, tmp_path: Path) -> None:
    """Debian's python3 without python3-venv: `python3 -m venv` fails until the package is there."""
    real = shutil.which("python3")
    installed = tmp_path / "installed"
    stub(
        machine,
        "python3",
        f'if [ "$1 $2" = "-m venv" ] && ! grep -qx python3-venv {installed}; then\n'
        '  mkdir -p "$3"; echo "The virtual environment was not created successfully because ensurepip is not'
        ' available." >&2; exit 1\nfi\n'
        f'exec {real} "$@"',
    )
    venv = tmp_path / "venv"
    result = run_lib("ensure_venv", machine, {"PYTP_VENV": str(venv)})
    assert result.returncode == 0, result.stderr
    assert any(c.startswith("sudo ") and c.endswith("install -y -q --no-install-recommends python3-venv")
               for c in calls(machine))
    assert (venv / "bin" / "python").exists()
    assert subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode == 0
    # Idempotent: the second run keeps the venv as it is.
    config = (venv / "pyvenv.cfg").stat()
    assert run_lib("ensure_venv", machine, {"PYTP_VENV": str(venv)}).returncode == 0
    assert (venv / "pyvenv.cfg").stat().st_ino == config.st_ino


def test_something_else_at_the_venv_path_is_left_alone(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "notes.txt").write_text("mine")
    result = run_lib("ensure_venv", None, {"PYTP_VENV": str(venv)})
    assert result.returncode != 0
    assert "is not a virtual environment: move it away" in result.stderr
    assert (venv / "notes.txt").read_text() == "mine"


def test_link_pytp_puts_the_venv_command_on_the_path(tmp_path: Path) -> None:
    links, venv = tmp_path / "links", tmp_path / "venv"
    env = {"PYTP_LINK_DIR": str(links), "PYTP_VENV": str(venv), "PATH": f"{links}:/usr/bin:/bin"}
    result = run_lib("link_pytp", None, env)
    assert result.returncode == 0, result.stderr
    assert os.readlink(links / "pytp") == str(venv / "bin" / "pytp")
    assert f"pytp is {links}/pytp -> {venv}/bin/pytp" in result.stdout
    assert run_lib("link_pytp", None, env).returncode == 0  # again: the same link
    assert os.readlink(links / "pytp") == str(venv / "bin" / "pytp")
    # A directory not on PATH is named, with the ways out.
    result = run_lib("link_pytp", None, {**env, "PATH": "/usr/bin:/bin"})
    assert "is not on this shell's PATH yet" in result.stdout and "source" in result.stdout


def test_link_pytp_never_replaces_a_real_file(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "pytp").write_text("#!/bin/sh\necho someone else's pytp\n")
    result = run_lib("link_pytp", None, {"PYTP_LINK_DIR": str(links), "PYTP_VENV": str(tmp_path / "venv")})
    assert result.returncode == 0
    assert "exists and is not a symlink: left alone" in result.stdout
    assert "someone else's" in (links / "pytp").read_text()


def test_the_first_backup_is_for_a_new_user_only(tmp_path: Path) -> None:
    """No surprise job on a user's own configuration, and none again on a second run."""
    log = tmp_path / "pytp.log"
    fake = tmp_path / "pytp"
    fake.write_text(  # records its arguments and, like pytp, creates the configuration on first use
        f'#!/bin/bash\necho "$*" >> {log}\n'
        'mkdir -p "$XDG_CONFIG_HOME/pytp"; touch "$XDG_CONFIG_HOME/pytp/config.json"\n'
    )
    fake.chmod(0o755)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = run_lib(f"first_backup {fake}", None, env)
    assert first.returncode == 0, first.stderr
    assert log.read_text().splitlines() == ["backup configs docs --job first-backup", "tapes"]
    again = run_lib(f"first_backup {fake}", None, env)
    assert again.returncode == 0 and "exists: no first backup" in again.stdout
    assert len(log.read_text().splitlines()) == 2
    mine = tmp_path / "mine.json"
    mine.write_text("{}")
    (tmp_path / "config" / "pytp" / "config.json").unlink()
    assert "mine.json exists" in run_lib(f"first_backup {fake}", None, {**env, "PYTP_CONFIG": str(mine)}).stdout
    assert len(log.read_text().splitlines()) == 2


def test_no_script_installs_into_the_system_python() -> None:
    """PEP 668: every pip call goes through the venv's python (venv_pip_install)."""
    for script in CI.iterdir():
        for number, line in enumerate(script.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bpip3?\b", code) and "pip --version" not in code:
                assert '"$VENV/bin/python" -m pip install' in code, f"{script.name}:{number}: {line.strip()}"


def test_setup_installs_only_what_the_default_needs_and_ci_runs_the_test_command() -> None:
    setup = (CI / "setup").read_text()
    assert re.search(r"^apt_install tar mt-st mtx$", setup, re.M)
    for package in ("postgresql", "tgt", "qemu"):
        assert package not in setup.split("set -euo pipefail", 1)[1]
    test = (CI / "test").read_text()
    assert "bash .ci/install-deps.sh" in test and "bash .ci/install-system-test-deps.sh" in test
    assert 'exec "$VENV/bin/python" -m pytest "$@"' in test
    run = [line for line in (CI / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert run[-1] == "exec bash .ci/test"


def test_readme_two_commands_are_the_scripts() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    assert "bash .ci/setup" in section and "bash .ci/test" in section
    assert "source .venv/bin/activate" in section
