#!/usr/bin/env bash
# Builds pard and runs it on the demo agent package shipped in examples/: REST on
# $REST_PORT (default 8080). Ctrl-C drains and exits. Extra arguments go to pard.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target pard parctl

run_dir=${PAR_DEMO_DIR:-$PWD/build/demo}
mkdir -p "$run_dir"
export AGENT_APP_ID=${AGENT_APP_ID:-demo-agent}
export AGENT_PACKAGE_PATH=${AGENT_PACKAGE_PATH:-$PWD/examples/demo-agent}
export PAR_CACHE_DIR=${PAR_CACHE_DIR:-$run_dir/cache}
export PAR_ADMIN_SOCKET=${PAR_ADMIN_SOCKET:-$run_dir/admin.sock}
echo "pard: REST on http://127.0.0.1:${REST_PORT:-8080}/health (Ctrl-C to drain and stop)" >&2
exec build/pard "$@"
