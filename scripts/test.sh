#!/usr/bin/env bash
# Runs every test: installs what is missing, type-checks, builds each example image once, then
# runs unit and end-to-end tests (real QEMU under TCG) with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node scripts/run-tests.mjs "$@"
