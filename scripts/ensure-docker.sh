#!/usr/bin/env bash
# A running Docker engine and the Docker provider's sandbox image, for its tests and `make dev`.
# As root it installs Debian's docker.io and starts dockerd when they are missing; the image is
# built from Debian packages and the sandbox runtime's wheels (local/sandbox_runtime, fetched once
# from PyPI into its cache) and reused when nothing that goes into it changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the Docker provider needs a Docker engine: install docker.io (or Docker Engine) and start it" >&2
    exit 1
  fi
  echo "installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the Docker engine is not running: start it (e.g. sudo systemctl start docker)" >&2
    exit 1
  fi
  echo "starting dockerd (log: /var/log/sandbox-gateway-dockerd.log)"
  nohup dockerd >/var/log/sandbox-gateway-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/sandbox-gateway-dockerd.log >&2; exit 1; }
fi

# build.sh fetches the sandbox runtime's wheels with the project's .venv (its pip).
[ -x .venv/bin/python ] || make install
bash local/docker_sandbox/build.sh
