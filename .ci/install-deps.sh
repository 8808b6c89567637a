#!/usr/bin/env bash
# The Debian packages the tests need besides the embedded default's (.ci/setup):
# sg3-utils and lsscsi, mbuffer, acl and attr, gcc and the C headers (the st
# ioctl constants are checked against <linux/mtio.h>), the PostgreSQL server
# binaries for the shared-catalog tests, and chromium (headless) that loads
# the HTML report in tests/cli/test_report_html.py.  For root or a user with sudo;
# idempotent.  Debian's postgresql package starts a cluster of its own; the
# tests start their own server on a free loopback port and do not need it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install tar mt-st mtx sg3-utils lsscsi mbuffer postgresql acl attr gcc libc6-dev chromium
