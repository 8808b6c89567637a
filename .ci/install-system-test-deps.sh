#!/usr/bin/env bash
# Install the Debian packages the system tests need (tests/system/): the tgt
# SCSI target (virtual tape drives and media changer), QEMU with its built-in
# iSCSI initiator, the tape tools the guest runs (mt, mtx, tar, lsscsi,
# sg3-utils), and what the harness needs to build the guest's initramfs
# (busybox-static, cpio, kmod for depmod).
#
# For root or a user with sudo.  Idempotent: packages already installed are
# not touched, and the package lists are refreshed only when something is
# missing and cannot be found.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

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

apt_install "${packages[@]}"

# tgt's package starts a tgtd service on install where an init system runs;
# the tests start their own tgtd on a private port, so a system one is only
# noise. Leave it alone if it is there: stopping services is not ours to do.
