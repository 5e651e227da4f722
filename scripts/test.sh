#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, runs the whole suite (Check unit
# tests and the integration tests of the real binaries), then the same suite again in the
# ASan+UBSan build, then each libFuzzer target for a bounded time on its seed corpus, then
# the container end-to-end suite (tests/e2e) when a Docker engine can be installed and
# started here. `--quick` skips the sanitizer, fuzzing and container passes.
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

# The container suite prints "e2e: N passed, M failed" or, exiting 77, "e2e skipped: why".
e2e_note=""
run_e2e() {
  local out rc=0 line
  out=$(mktemp)
  PAR_E2E_NO_DEPS=1 bash tests/e2e/run.sh 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
  line=$(grep -E '^e2e( skipped:|: [0-9]+ passed, [0-9]+ failed)' "$out" | tail -n1 || true)
  rm -f "$out"
  case "$rc:$line" in
  77:*) e2e_note=$line; return 0 ;;
  *:"e2e: "*)
    set -- $line
    passed=$((passed + $2))
    failed=$((failed + $4)) ;;
  *) echo "e2e: ended with $rc and no summary"; failed=$((failed + 1)); rc=1 ;;
  esac
  return "$rc"
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

  echo "== fuzzing (${PAR_FUZZ_SECONDS:-60} s per target)"
  bash scripts/fuzz.sh "${PAR_FUZZ_SECONDS:-60}" || status=1
fi

echo "== container end-to-end"
if [ "$quick" -eq 1 ]; then
  e2e_note="e2e skipped: --quick"
  echo "$e2e_note"
elif [ "${PAR_E2E:-1}" = 0 ]; then
  e2e_note="e2e skipped: PAR_E2E=0"
  echo "$e2e_note"
else
  run_e2e || status=1
fi

# Every pass together, as one closing line.
echo "total: $passed passed, $failed failed${e2e_note:+; $e2e_note}"
exit $status
