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

# Cargo.toml's rust-version (and the container's Rust) must cover every locked dependency.
bash scripts/check-msrv.sh

# Unit tests, then the integration suite, which starts its own redis-server processes on free
# loopback ports. Benchmarks are run by hand (docs/BENCHMARKS.md).
cargo test --locked -- --test-threads 4
