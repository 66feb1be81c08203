#!/usr/bin/env bash
# Runs every test of the workspace, after making sure the test bed's outside pieces are
# here: kubectl (required; the API emulator is checked against the real client) and moto
# (installed with pip if missing; the AWS tests start it themselves).
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
cargo test --workspace "$@"
