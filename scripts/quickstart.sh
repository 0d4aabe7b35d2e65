#!/usr/bin/env bash
# Quickstart: install what is missing, then build examples/hello-ts into an image and boot it.
# The first run compiles its kernel (~5 minutes on 2 cores, with progress); later runs reuse it.
# Ctrl-C stops the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/pith.js run examples/hello-ts "$@"
