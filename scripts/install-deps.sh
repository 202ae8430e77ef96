#!/usr/bin/env bash
# Install the Debian packages hora needs, when they are missing.
# Idempotent and quick when everything is present; needs root (or sudo)
# only when something must be installed.
#   --bench (or HORA_BENCH_DEPS=1): also the peers bench/bench_peers.py
#   compares hora with (beanstalkd, redis-server).
set -euo pipefail

bench=${HORA_BENCH_DEPS:-0}
for a in "$@"; do
  case "$a" in
    --bench) bench=1 ;;
    *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
  esac
done

PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libuv1-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libssl-dev
  libcmocka-dev tzdata curl python3 openssl
  # to build C-Raft 0.22.1 from Debian's source package (scripts/build-raft.sh)
  dpkg-dev autoconf automake libtool liblz4-dev
)
if [ "$bench" = 1 ]; then
  PKGS+=(beanstalkd redis-server)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/build-raft.sh" ]; then
  "$here/build-raft.sh"
fi
