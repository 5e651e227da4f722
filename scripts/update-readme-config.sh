#!/usr/bin/env bash
# Regenerates the configuration table in README.md from `pard --help-config`, the one source
# of the variables, defaults and rules (a test fails while the two differ).
set -euo pipefail
cd "$(dirname "$0")/.."
pard=${1:-build/pard}
table=$("$pard" --help-config)
/usr/bin/python3 - "$table" <<'PY'
import sys
table = sys.argv[1] + "\n"
b, e = "<!-- config-table:begin -->\n", "<!-- config-table:end -->"
text = open("README.md").read()
head, rest = text.split(b, 1)
tail = rest.split(e, 1)[1]
open("README.md", "w").write(head + b + table + e + tail)
PY
