#!/usr/bin/env bash
# Builds pard and runs it on the echo agent shipped in examples/ (built and packed by the
# build): REST on $REST_PORT (8080), A2A gRPC on $A2A_PORT (50051), UI on $UI_PORT (3000).
# Ctrl-C drains and exits. Extra arguments go to pard.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target pard parctl echo-agent-apkg

run_dir=${PAR_DEMO_DIR:-$PWD/build/demo}
mkdir -p "$run_dir"
export AGENT_APP_ID=${AGENT_APP_ID:-echo-agent}
export AGENT_PACKAGE_PATH=${AGENT_PACKAGE_PATH:-$PWD/build/examples/echo-agent.apkg}
export PAR_CACHE_DIR=${PAR_CACHE_DIR:-$run_dir/cache}
export PAR_ADMIN_SOCKET=${PAR_ADMIN_SOCKET:-$run_dir/admin.sock}
echo "pard: REST http://127.0.0.1:${REST_PORT:-8080}/health, UI http://127.0.0.1:${UI_PORT:-3000}/, A2A 127.0.0.1:${A2A_PORT:-50051} (Ctrl-C drains and stops)" >&2
exec build/pard "$@"
