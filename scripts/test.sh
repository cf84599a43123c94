#!/usr/bin/env bash
# The test job: install what is missing, build everything (release: the encoder tests run the real
# model over 520 sentences, which a debug build makes minutes slower) and run the whole test suite.
# PSM_LONG=1 runs the long modes (1,000 SIGKILLs in the crash test instead of 30, 1,000 rounds of
# racing appends per backend instead of 40).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The PostgreSQL journal backend's tests (issue 9) run against a real server on loopback: install it
# when missing, start a throwaway one, stop it on exit.
source scripts/postgres.sh
# The audit-report test renders the report in headless Chromium and reads the screenshot with python3.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  echo "test: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${PSM_LONG:-0}" = "1" ]; then
  export PSM_CRASH_KILLS="${PSM_CRASH_KILLS:-1000}" PSM_FAULT_POINTS="${PSM_FAULT_POINTS:-300}" PSM_FLIP_TRIALS="${PSM_FLIP_TRIALS:-1000}"
  export PSM_FUZZ_MUTATIONS="${PSM_FUZZ_MUTATIONS:-200000}" PSM_RACE_ROUNDS="${PSM_RACE_ROUNDS:-1000}"
fi
swift build -c release --build-tests
# --skip-build: `swift test -c release` alone would rebuild everything with -enable-testing (minutes on 2 cores).
swift test -c release --skip-build
