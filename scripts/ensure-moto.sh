#!/usr/bin/env bash
# Sourced by test.sh and demo.sh: makes sure moto (which plays AWS in the tests and the
# demo) is installed, with pip if it is missing.
if ! python3 -c 'import moto.server' >/dev/null 2>&1 && ! command -v moto_server >/dev/null 2>&1; then
  # 5.2.1 is the version the tests were written against (aws-sdk-cloudwatch is pinned to
  # the last Query-protocol release because moto 5.2 does not speak CBOR).
  echo "moto is missing: installing it with pip (pip install 'moto[server]==5.2.1')" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi
