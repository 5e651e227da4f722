#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need, so a fresh
# Debian 12 machine needs nothing by hand. Idempotent: a second run is a no-op.
# `--build-only` installs just what compiling needs (the container image's build stage).
set -euo pipefail

build_only=0
case "${1:-}" in
  "") ;;
  --build-only) build_only=1 ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

# Compiling pard, parctl and the example agents (tests off), all C: nothing more.
build_pkgs=(
  gcc make libc6-dev cmake pkg-config
  libmicrohttpd-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  libcurl4-openssl-dev libssl-dev libcjson-dev libarchive-dev libreadline-dev
  libcyaml-dev libyaml-dev
)
pkgs=(
  "${build_pkgs[@]}" build-essential clang protobuf-compiler protobuf-compiler-grpc grpc-proto check
  curl wrk python3 python3-grpcio python3-botocore netcat-openbsd valgrind procps zip unzip
  openssl libarchive-tools libclang-rt-14-dev
  python3-venv python3-pip python3-setuptools python3-wheel python3-fastapi python3-uvicorn
  python3-yaml
  python3-jsonschema
  # parctl's tests: tmux drives its shell, zsh and fish check the completion scripts,
  # setpriv (util-linux) runs it as nobody.
  tmux zsh fish util-linux
  # verify-isolation's namespace tests: a veth pair and REJECT rules.
  iproute2 iptables
)
if [ "$build_only" -eq 1 ]; then
  pkgs=("${build_pkgs[@]}")
else
  # Node.js runs the test peers (s3rver); a machine that already has node keeps its own.
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} Debian packages present"
else
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "$build_only" -eq 0 ] || exit 0

# npm packages of the test peers, pinned by tests/peers/package-lock.json.
peers="$(dirname "$0")/../tests/peers"
if [ ! -f "$peers/node_modules/.package-lock.json" ] ||
   ! cmp -s "$peers/package-lock.json" "$peers/node_modules/.par-installed-lock"; then
  echo "install-deps: npm ci in tests/peers"
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$peers/package-lock.json" "$peers/node_modules/.par-installed-lock"
fi
