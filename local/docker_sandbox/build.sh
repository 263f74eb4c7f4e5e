#!/usr/bin/env bash
# Builds (or reuses) the Docker provider's sandbox image. The tag carries a hash of everything
# that goes into it, so a second run on the same machine finds it and builds nothing.
# Usage: build.sh            -> prints the image tag on its last line
#   BASE_IMAGE=python:3.12-slim build.sh   (where a registry is reachable)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
context=$(dirname "$here")   # local/
BASE_IMAGE=${BASE_IMAGE:-sandbox-gateway/base:bookworm}

if [ "$BASE_IMAGE" = "sandbox-gateway/base:bookworm" ]; then
  bash "$here/build-base.sh" "$BASE_IMAGE" >&2
fi
hash=$( (echo "$BASE_IMAGE"; cat "$here/Dockerfile" "$here/agent.py" "$here/relay.py" "$here/build-base.sh" \
  "$context/e2b_host/__init__.py" "$context/e2b_host/isolation.py" "$context/e2b_host/kernels.py" \
  "$context/e2b_host/js_runner.js" "$context/e2b_host/sync_stdio.js") | sha256sum | cut -c1-12)
tag="sandbox-gateway/sandbox:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "sandbox image $tag exists: not rebuilding" >&2
else
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$here/Dockerfile" -t "$tag" "$context" >&2
fi
docker tag "$tag" sandbox-gateway/sandbox:latest
echo "$tag"
