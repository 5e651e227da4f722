#!/usr/bin/env bash
# Runs the container end-to-end suite on its own (scripts/test.sh runs it too): installs what
# it needs, then tests/e2e/test_container.py builds the image in a Docker engine of its own
# and drives the containers. Exit 0 passed, 1 failed, 77 skipped (no engine can run here).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The host side needs the test peers (s3rver), grpcio, protoc and botocore.
[ "${PAR_E2E_NO_DEPS:-0}" = 1 ] || bash scripts/install-deps.sh
# Debian's interpreter: grpcio and botocore are Debian packages, not in pyenv's python3.
exec /usr/bin/python3 tests/e2e/test_container.py
