#!/usr/bin/env bash
# The benchmark suite's one command (issue 10; the documented equivalent of `make bench`):
# installs what it needs, builds pard Release in build-bench/, runs every benchmark, prints
# the table and writes report.md + report.json. Arguments go to bench/parbench.py
# (--quick, --profile, --only boot,load,drain,pipeline, --out DIR, --keep).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${PAR_BENCH_BUILD:-$root/build-bench}"

[ "${PAR_BENCH_SKIP_INSTALL:-0}" = 1 ] || "$root/bench/install-deps.sh"

# Release is what gets measured.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

echo "bench: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
exec /usr/bin/python3 "$root/bench/parbench.py" --build "$build" "$@"
