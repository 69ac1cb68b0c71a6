#!/usr/bin/env bash
# Runs Sentinel's whole test suite on a fresh machine: installs what the tests need
# (redis-server for the Redis store tests), then runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (needed by the Redis store tests)..." >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# The Redis Cluster test builds its cluster with redis-cli (package redis-tools).
if ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-tools >/dev/null
fi

# Unit tests, then the integration suite, which starts its own redis-server processes on free
# loopback ports. Benchmarks are run by hand (docs/BENCHMARKS.md).
cargo test --locked -- --test-threads 4

# The Python SDK's tests run against the real binary (built above by cargo test) in memory
# and on a redis-server of their own. A virtual environment under target/ keeps them off the
# system Python and out of git.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
fi
cargo build --locked --quiet
VENV=target/.venv-sdk
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "./sdk/python[test]"
# The pytest script (not `python -m pytest`) keeps the source tree off sys.path, so the tests
# import the package as pip installed it.
(cd sdk/python && "../../$VENV/bin/pytest" -q -p no:cacheprovider tests)
