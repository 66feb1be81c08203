#!/usr/bin/env bash
# Runs every test of the workspace, after making sure the test bed's outside pieces are
# here: kubectl (required; the API emulator is checked against the real client), moto
# (installed with pip if missing; the AWS tests start it themselves) and Chromium (for
# the report's headless-browser test; installed with apt when missing and possible).
# Ends with one line totalling every test binary's results.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: kubectl is not installed; the emulator's tests drive the real kubectl binary." >&2
  echo "       Install it (e.g. apt-get install kubectl, or the binary from the Kubernetes release) and re-run." >&2
  exit 1
fi

source scripts/ensure-moto.sh

# The report test renders the demo's HTML in headless Chromium; without it that test
# prints "SKIPPED: chromium not installed". Install it where apt can.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "chromium is missing: installing it with apt-get (for the report's browser test)" >&2
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "warning: could not install chromium; the report's browser test will be skipped" >&2
fi

cargo fmt --all -- --check
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "test.sh: building and running every test. The first build takes 7-11 minutes on 2 cores" >&2
echo "         (most of it aws-sdk-ec2; cargo shows its progress); the tests then take a few minutes." >&2
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# cargo's last "test result" line is the doc-tests' (often 0 tests); total them all.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i; if ($(i+1) ~ /^ignored;?$/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
