#!/usr/bin/env bash
# The main job: install what is missing, build psm (release) and run its demo on ./psm-store.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product psm
.build/release/psm demo --store "${PSM_STORE:-./psm-store}" "$@"
