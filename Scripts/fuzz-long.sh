#!/usr/bin/env bash
# The long fuzzing mode (issue 8): builds psm-fuzz with libFuzzer and AddressSanitizer and runs every
# target for PSM_FUZZ_SECONDS (default 3600) each, starting from the committed seed corpus (copied, so
# the repository is not changed). Prints one line per target: runs, seconds, crashes. Exit 1 on a crash.
#   PSM_FUZZ_SECONDS=600 ./Scripts/fuzz-long.sh [target…]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${PSM_FUZZ_SECONDS:-3600}"
targets=("$@")
((${#targets[@]})) || targets=(record payload events portable model safetensors tokenizer zstd http)
swift build --product psm-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING >/dev/null || exit 1
work=$(mktemp -d)
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$work/artifacts-$t"
  cp Fuzz/corpus/"$t"/* "$work/$t"/
  PSM_FUZZ_TARGET=$t .build-fuzz/debug/psm-fuzz "$work/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$work/artifacts-$t/" >"$work/$t.log" 2>&1
  rc=$?
  runs=$(grep -o 'Done [0-9]* runs' "$work/$t.log" | grep -o '[0-9]*' || echo 0)
  crashes=$(ls "$work/artifacts-$t" | wc -l)
  echo "fuzz $t: ${runs:-0} runs in ${seconds} s, exit $rc, ${crashes} crash/timeout/oom artifacts (log $work/$t.log)"
  [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] || status=1
done
exit $status
