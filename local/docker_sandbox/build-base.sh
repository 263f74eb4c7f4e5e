#!/usr/bin/env bash
# Builds the sandbox's base image from Debian packages, for machines that reach no image
# registry: debootstrap a bookworm root, add the interpreters in a chroot, `docker import` it.
# Usage: build-base.sh [TAG]   (default sandbox-gateway/base:bookworm; skipped if it exists;
#   build.sh passes a tag carrying a hash of this file)
set -euo pipefail

TAG=${1:-sandbox-gateway/base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES="python3 python3-ipykernel nodejs node-typescript tini ca-certificates"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG exists: not rebuilding"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

root=$(mktemp -d /var/tmp/sandbox-base.XXXXXX)
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

echo "debootstrap bookworm into $root"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# apt resolves what debootstrap cannot (virtual packages); no recommends keeps the image small.
chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null && apt-get clean"
umount "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/etc/resolv.conf"
: > "$root/etc/resolv.conf"

echo "importing $TAG"
# An imported image carries no config: PATH and the like are set by the Dockerfile on top.
tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$TAG" >/dev/null
docker image ls "$TAG"
