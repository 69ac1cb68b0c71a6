#!/usr/bin/env bash
# Keeps the declared minimum Rust version honest. The real minimum is the highest
# `rust-version` among the packages Cargo.lock resolves (one new dependency release can raise
# it), so this fails when Cargo.toml's `rust-version`, or the Rust image deploy/Dockerfile
# builds with, is lower than that.
#
# Needs only cargo and python3 (no jq). Reads the lock file as it is (`--locked`); when the
# crate sources cannot be fetched (no network), it falls back to the cached sources of the
# host platform's packages and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

metadata="$(mktemp)"
trap 'rm -f "$metadata"' EXIT
scope="every package in Cargo.lock"
if ! cargo metadata --format-version 1 --locked >"$metadata" 2>/dev/null; then
  host="$(rustc -vV | sed -n 's/^host: //p')"
  scope="the packages Cargo.lock resolves for $host (offline: other platforms not checked)"
  if ! cargo metadata --format-version 1 --locked --offline --filter-platform "$host" \
    >"$metadata"; then
    echo "check-msrv: cargo metadata failed (is Cargo.lock in sync with Cargo.toml?)" >&2
    exit 1
  fi
fi

python3 - "$metadata" "$scope" deploy/Dockerfile <<'PY'
import json
import re
import sys

metadata_path, scope, dockerfile = sys.argv[1:4]
with open(metadata_path, encoding="utf-8") as f:
    meta = json.load(f)


def version(text):
    """'1.89' or '1.89.0' -> (1, 89, 0), so that 1.89 and 1.89.0 compare equal."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def show(v):
    """(1, 89, 0) -> '1.89', the form Cargo.toml and image tags use."""
    return ".".join(str(p) for p in (v[:2] if v[2] == 0 else v))


resolved = {node["id"] for node in meta["resolve"]["nodes"]}
own = set(meta["workspace_members"])
needed = None
needers = []
declared = None
for package in meta["packages"]:
    rust_version = package.get("rust_version")
    if package["id"] in own:
        declared = rust_version
        continue
    if package["id"] not in resolved or not rust_version:
        continue
    v = version(rust_version)
    if needed is None or v > needed:
        needed, needers = v, []
    if v == needed:
        needers.append(f"{package['name']} {package['version']}")

if needed is None:
    print("check-msrv: no dependency declares a rust-version; nothing to check")
    sys.exit(0)
why = f"{', '.join(sorted(needers))} (the highest rust-version among {scope})"
failures = []
if declared is None:
    failures.append(
        f"Cargo.toml declares no rust-version; set rust-version = \"{show(needed)}\": "
        f"{why} needs it"
    )
elif version(declared) < needed:
    failures.append(
        f"Cargo.toml says rust-version = \"{declared}\", but {why} needs "
        f"Rust {show(needed)}: raise rust-version to \"{show(needed)}\""
    )

# The builder image: `FROM rust:1.89-bookworm` or `ARG RUST_IMAGE=rust:1.89.0-bookworm` (any
# tag starting with a version).
try:
    with open(dockerfile, encoding="utf-8") as f:
        images = re.findall(
            r"^(?:FROM\s+(?:--platform=\S+\s+)?|ARG\s+\w+=)rust:(\d+\.\d+(?:\.\d+)?)",
            f.read(),
            flags=re.MULTILINE,
        )
except FileNotFoundError:
    images = None
if images == []:
    failures.append(
        f"{dockerfile}: no `FROM rust:<version>...` or `ARG NAME=rust:<version>...` line, "
        "so the builder's Rust version cannot be checked"
    )
for image in images or []:
    if version(image) < needed:
        failures.append(
            f"{dockerfile} builds with rust:{image}, but {why} needs Rust {show(needed)}: "
            f"use rust:{show(needed)} or newer"
        )

if failures:
    for failure in failures:
        print(f"check-msrv: {failure}", file=sys.stderr)
    sys.exit(1)
print(f"check-msrv: rust-version {declared} covers {why}")
PY
