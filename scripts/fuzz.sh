#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, build-fuzz/) and runs each for SECONDS (default 30)
# over a scratch copy of its seeds; any finding fails the run (see tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAR_FUZZ=ON \
  -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz_all

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir/artifacts"
status=0
# The target list lives in tests/fuzz/CMakeLists.txt, which writes it here.
for t in $(cat "$dir/tests/fuzz/targets.txt"); do
  mkdir -p "$work/$t"
  cp tests/fuzz/corpus/$t/* "$work/$t/"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  echo "== fuzz_$t: ${secs}s over $(ls "$work/$t" | wc -l) seeds"
  # libFuzzer's progress goes to a log; a failure shows its tail.
  log="$dir/fuzz_$t.log"
  if "$dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
      "${dict[@]}" "$work/$t" >"$log" 2>&1; then
    echo "fuzz_$t: ok, $(grep -o 'number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') inputs run"
  else
    tail -n 40 "$log" >&2
    echo "fuzz_$t FAILED: see $log and $dir/artifacts/$t-*" >&2
    status=1
  fi
done
exit $status
