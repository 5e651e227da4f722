#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, runs the whole suite (Check unit
# tests and the integration tests of the real binaries), then the same suite again in the
# ASan+UBSan build, then each libFuzzer target for a bounded time on its seed corpus.
# `--quick` skips the sanitizer and fuzzing passes.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/install-deps.sh

jobs=$(nproc)
passed=0
failed=0
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  local rc=0
  (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900) | tee "$dir/ctest.out" || rc=1
  # ctest's summary: "100% tests passed, 0 tests failed out of 24"
  local total bad
  total=$(grep -o 'out of [0-9]*' "$dir/ctest.out" | tail -n1 | grep -o '[0-9]*' || echo 0)
  bad=$(grep -o '[0-9]* tests failed' "$dir/ctest.out" | tail -n1 | grep -o '^[0-9]*' || echo 0)
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  return $rc
}

status=0
echo "== normal build"
run_suite build || status=1

if [ "$quick" -eq 0 ]; then
  echo "== ASan+UBSan build"
  # Slower binaries: integration waits scale with PAR_TEST_SLOWDOWN.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  PAR_TEST_SLOWDOWN=3 CK_TIMEOUT_MULTIPLIER=10 \
    run_suite build-asan -DPAR_SANITIZE=ON || status=1

  echo "== fuzzing (${PAR_FUZZ_SECONDS:-30} s per target)"
  bash scripts/fuzz.sh "${PAR_FUZZ_SECONDS:-30}" || status=1
fi

# Both passes together, as one closing line.
echo "total: $passed passed, $failed failed"
exit $status
