#!/usr/bin/env bash
# Installs what PSM needs on a fresh Debian machine (Swift itself is expected at /opt/swift or on PATH).
# Idempotent: installs only what is missing. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

need=()
for pkg in liblmdb-dev libzstd-dev libopenblas-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
  else
    echo "setup: swift not found (expected on PATH or at /opt/swift/usr/bin); install Swift 6.x first" >&2
    exit 1
  fi
fi
for lib in lmdb libzstd openblas; do
  pkg-config --exists "$lib" || { echo "setup: pkg-config cannot find $lib after installing" >&2; exit 1; }
done
