#!/usr/bin/env bash
# Installs what the tests need and runs them. The test run itself starts
# libvirtd and a Ceph RADOS Gateway on 127.0.0.1 and stops them afterwards
# (test/support/global-setup.ts).
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm test -- "$@"
