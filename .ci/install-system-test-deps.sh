#!/usr/bin/env bash
# Install the Debian packages the system tests need (tests/system/): the tgt
# SCSI target (virtual tape drives and media changer), QEMU with its built-in
# iSCSI initiator, the tape tools the guest runs (mt, mtx, tar, lsscsi,
# sg3-utils), and what the harness needs to build the guest's initramfs
# (busybox-static, cpio, kmod for depmod).
#
# Idempotent: packages already installed are not touched, and the package
# lists are refreshed only when something is missing and cannot be found.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

packages=(
  tgt
  qemu-system-x86
  qemu-block-extra
  mt-st
  mtx
  tar
  busybox-static
  cpio
  kmod
  lsscsi
  sg3-utils
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-test-deps: must run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-test-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-system-test-deps: installing ${missing[*]}"

apt_install() {
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Refresh the lists first when they were never fetched, or when a missing
# package is unknown to them; otherwise try straight away and refresh only if
# the install fails (stale lists point at files the mirror no longer has).
need_update=0
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  need_update=1
else
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      need_update=1
      break
    fi
  done
fi

if [ "$need_update" -eq 1 ]; then
  apt-get update -q
  apt_install
elif ! apt_install; then
  apt-get update -q
  apt_install
fi

# tgt's package starts a tgtd service on install where an init system runs;
# the tests start their own tgtd on a private port, so a system one is only
# noise. Leave it alone if it is there: stopping services is not ours to do.
echo "install-system-test-deps: done"
