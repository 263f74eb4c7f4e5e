#!/usr/bin/env bash
# Builds (or reuses) the Docker provider's sandbox image. The tag carries a hash of everything
# that goes into it, so a second run on the same machine finds it and builds nothing.
# The sandbox runtime's wheels (local/sandbox_runtime, fetched once into its cache by the
# project's .venv) are copied into the build context: the build itself needs no network.
# Usage: build.sh            -> prints the image tag on its last line
#   BASE_IMAGE=other:tag build.sh   (any image with python3, bash and node)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
context=$(dirname "$here")   # local/
repo=$(dirname "$context")
PYTHON=${PYTHON:-$repo/.venv/bin/python}

if [ -z "${BASE_IMAGE:-}" ]; then
  # The Debian base is tagged by a hash of its recipe: a package added there makes a new base
  # (an old one of the same name would otherwise be reused as it is).
  BASE_IMAGE="sandbox-gateway/base:bookworm-$(sha256sum "$here/build-base.sh" | cut -c1-12)"
  bash "$here/build-base.sh" "$BASE_IMAGE" >&2
fi
# The wheels must be for the image's python3, whatever the host's is.
pyver=$(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
wheels=$(cd "$repo" && PYTHONPATH="$repo" "$PYTHON" -m local.sandbox_runtime --wheelhouse --python-version "$pyver" | tail -1)
runtime="$context/sandbox_runtime"
hash=$( (echo "$BASE_IMAGE"; cat "$here/Dockerfile" "$here/agent.py" "$here/relay.py" "$here/build-base.sh" \
  "$context/e2b_host/__init__.py" "$context/e2b_host/isolation.py" "$context/e2b_host/kernels.py" \
  "$context/e2b_host/js_runner.js" "$context/e2b_host/sync_stdio.js" \
  "$runtime/requirements.txt" "$runtime/finish.py" "$runtime/e2b_display.py" "$runtime/sudo"; \
  ls "$wheels") | sha256sum | cut -c1-12)
tag="sandbox-gateway/sandbox:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "sandbox image $tag exists: not rebuilding" >&2
else
  # A directory of its own per build (parallel builds), removed whatever happens.
  copy=$(mktemp -d "$context/.wheelhouse.XXXXXX")
  trap 'rm -rf "$copy"' EXIT
  cp "$wheels"/*.whl "$copy/"
  docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "WHEELS=$(basename "$copy")" \
    -f "$here/Dockerfile" -t "$tag" "$context" >&2
fi
docker tag "$tag" sandbox-gateway/sandbox:latest
echo "$tag"
