# Shared by .ci/setup, .ci/test and the install scripts; sourced, not run.
#
# - as_root: run a command as root, directly or through sudo, so that every
#   script works both for root and for a user with sudo.
# - apt_install: install the Debian/Ubuntu packages that are missing, and only
#   those (idempotent; package lists are refreshed only when needed).
# - ensure_venv / venv_pip_install: pytp lives in a virtual environment in the
#   checkout (.venv), never in the system Python: Debian 12 and Ubuntu 24.04
#   refuse `pip install` there (PEP 668, externally-managed-environment).
# - link_pytp: put the venv's `pytp` on the user's PATH with one symlink.
# - first_backup: a first job on the embedded default, for a new user only.
#
# Overridable for tests: PYTP_VENV (the venv directory), PYTP_LINK_DIR (where
# the `pytp` symlink goes).

PYTP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${PYTP_VENV:-$PYTP_ROOT/.venv}

say() { echo "pytp setup: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "pytp setup: '$*' needs root: run this as root, or install sudo and run it as a user allowed to use it" >&2
    return 1
  fi
}

# The packages of "$@" that are not installed, one per line.
missing_packages() {
  local p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = "installed" ] || echo "$p"
  done
}

apt_install() {
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    say "not a Debian/Ubuntu system: install these yourself if missing: $*"
    return 0
  fi
  local missing=() p
  mapfile -t missing < <(missing_packages "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing ${missing[*]}"
  # Refresh the lists first when a missing package is unknown to them (a fresh
  # container has none); otherwise try at once and refresh only if that fails
  # (stale lists point at files the mirror no longer has).
  local need_update=0
  for p in "${missing[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || { need_update=1; break; }
  done
  if [ "$need_update" -eq 1 ]; then
    as_root apt-get update -q
  fi
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    [ "$need_update" -eq 0 ] || return 1
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

require_python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "pytp setup: pytp needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)" >&2
    return 1
  fi
}

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    return 0  # already there: keep it (idempotent)
  fi
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    echo "pytp setup: $VENV exists but is not a virtual environment: move it away and run this again" >&2
    return 1
  fi
  rm -rf "$VENV"  # a half-made venv (e.g. from a run before python3-venv was installed)
  say "creating the virtual environment $VENV"
  if ! python3 -m venv "$VENV"; then
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) separately.
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
}

# pip install into the venv; "$@" are pip install arguments.
venv_pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

link_pytp() {
  local dir=${PYTP_LINK_DIR:-}
  if [ -z "$dir" ]; then
    if [ "$(id -u)" -eq 0 ]; then dir=/usr/local/bin; else dir=$HOME/.local/bin; fi
  fi
  local link=$dir/pytp target=$VENV/bin/pytp
  mkdir -p "$dir"
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    say "$link exists and is not a symlink: left alone. Run $target, or first: source $VENV/bin/activate"
    return 0
  fi
  if [ -L "$link" ] && [ "$(readlink "$link")" != "$target" ]; then
    say "$link pointed at $(readlink "$link"): now at this checkout"
  fi
  ln -sfn "$target" "$link"
  say "pytp is $link -> $target"
  case ":$PATH:" in
    *":$dir:"*)
      local found
      found=$(command -v pytp || true)
      if [ -n "$found" ] && [ "$found" != "$link" ]; then
        say "note: 'pytp' on your PATH is $found, which comes before $dir"
      fi
      ;;
    *)
      say "$dir is not on this shell's PATH yet: open a new login shell (Debian's and Ubuntu's ~/.profile add"
      say "~/.local/bin once it exists), or add it yourself, or run: source $VENV/bin/activate"
      ;;
  esac
}

# The first backup goes to the embedded default only: a user who already has a
# configuration (perhaps real drives, or an older catalog to upgrade first)
# gets no surprise job, and a second run of the set-up adds none either.
# $1: the pytp to run.
first_backup() {
  local pytp=$1
  local config=${PYTP_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/pytp/config.json}
  if [ -e "$config" ]; then
    say "$config exists: no first backup. If pytp asks for it after an update, run: pytp db upgrade"
    return 0
  fi
  (cd "$PYTP_ROOT" && "$pytp" backup configs docs --job first-backup && "$pytp" tapes)
}
