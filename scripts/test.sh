#!/usr/bin/env bash
# The test job: install what is missing, build everything (release: the encoder tests run the real
# model over 520 sentences, which a debug build makes minutes slower) and run the whole test suite.
# PSM_LONG=1 runs the long modes (1,000 SIGKILLs in the crash test instead of 30).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ "${PSM_LONG:-0}" = "1" ]; then export PSM_CRASH_KILLS="${PSM_CRASH_KILLS:-1000}"; fi
swift build -c release --build-tests
swift test -c release
