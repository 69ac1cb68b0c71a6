#!/usr/bin/env bash
# Runs Sentinel's whole test suite on a fresh machine: installs what the tests need
# (redis-server for the Redis store tests, Chromium for the console), then runs every test target.
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

# The console's browser tests drive headless Chromium through chromedriver (Debian packages
# chromium and chromium-driver); under CI=true they fail rather than skip without them.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (needed by the console browser tests)..." >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Cargo.toml's rust-version (and the container's Rust) must cover every locked dependency.
bash scripts/check-msrv.sh

# The Helm chart, the plain manifest rendered from it, dashboards and alerts (deploy/check.py).
# Helm itself comes from PyPI (helm-python-sdk: Helm's Go SDK, no helm binary needed).
if ! python3 -c "import helm_python, yaml" >/dev/null 2>&1; then
  echo "installing helm-python-sdk and pyyaml (needed by deploy/check.py)..." >&2
  python3 -m pip install -q "helm-python-sdk==0.2.2" "pyyaml>=6"
fi
python3 deploy/check.py

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
