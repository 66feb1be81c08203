#!/usr/bin/env bash
# Runs every test of the workspace, after making sure the test bed's outside pieces are
# here: kubectl (required; the API emulator is checked against the real client) and moto
# (installed with pip if missing; the AWS tests start it themselves). Ends with one line
# totalling every test binary's results.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl is not installed; the emulator's tests drive the real kubectl binary." >&2
  echo "       Install it (e.g. apt-get install kubectl, or the binary from the Kubernetes release) and re-run." >&2
  exit 1
fi

if ! python3 -c 'import moto.server' >/dev/null 2>&1 && ! command -v moto_server >/dev/null 2>&1; then
  # 5.2.1 is the version the tests were written against (aws-sdk-cloudwatch is pinned to
  # the last Query-protocol release because moto 5.2 does not speak CBOR).
  echo "moto is missing: installing it with pip (pip install 'moto[server]==5.2.1')" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi

cargo fmt --all -- --check
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo's last "test result" line is the doc-tests' (often 0 tests); total them all.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
