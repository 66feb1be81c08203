#!/usr/bin/env bash
# The first command to run: builds baton (debug profile, the same build the tests use)
# and runs `baton demo`, the whole blue→green story on the embedded emulator, with no
# cloud account. Installs moto with pip if it is missing. Arguments go to `baton demo`
# (e.g. --keep, --state-dir DIR; see `baton demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-moto.sh
echo "demo.sh: building baton (debug profile). The first build takes 7-11 minutes on 2 cores," >&2
echo "         most of it aws-sdk-ec2; cargo shows its progress below. Later runs start in seconds." >&2
cargo build -p baton --bin baton
echo "demo.sh: running baton demo (about 30 s)" >&2
exec "${CARGO_TARGET_DIR:-target}/debug/baton" demo "$@"
