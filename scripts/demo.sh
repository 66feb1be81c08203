#!/usr/bin/env bash
# The first command to run: builds baton (debug profile, the same build the tests use)
# and runs `baton demo`, the whole blue→green story on the embedded emulator, with no
# cloud account. Installs moto with pip if it is missing. Arguments go to `baton demo`
# (e.g. --keep, --state-dir DIR; see `baton demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-moto.sh
exec cargo run --quiet -p baton -- demo "$@"
