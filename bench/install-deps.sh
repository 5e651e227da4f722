#!/usr/bin/env bash
# Installs what the benchmark suite needs on top of the build's own dependencies, without
# letting Debian's nginx package start a system service (the suite runs its own nginx).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# The build, the example packages, s3rver (npm) and the Python gRPC client come from here.
"$here/../scripts/install-deps.sh"

# Only what the benchmarks add: the references (nginx, h2load), profilers, eatmydata.
pkgs=(nginx nghttp2-client linux-perf libeatmydata1)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "bench/install-deps: all ${#pkgs[@]} benchmark packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exiting 101 tells invoke-rc.d not to start services: without it the nginx
# package would start a system nginx on port 80. A policy that was already there is kept.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Added by PAR bench/install-deps.sh while installing packages.\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  added_policy=1
fi
cleanup() { [ "$added_policy" -eq 1 ] && $sudo rm -f "$policy"; return 0; }
trap cleanup EXIT

echo "bench/install-deps: installing ${missing[*]}"
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"

# Belt and braces for machines with systemd, where policy-rc.d may not be consulted.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now nginx.service >/dev/null 2>&1 || true
fi
