#!/usr/bin/env bash
# The Debian packages the local E2B-compatible host needs: bubblewrap (per-sandbox namespaces)
# nodejs (the JavaScript kernel), node-typescript (TypeScript's compiler, for TypeScript cells and
# ES-module imports in JavaScript ones) and slirp4netns (sandboxes with internet access but not the
# host's loopback), plus util-linux's unshare/setsid; and curl, which the README's examples use
# (tests/e2e/test_readme_curl.py runs them). Installs them as root;
# otherwise says what is missing. The host runs each sandbox's bwrap as an unprivileged uid, so
# the kernel must allow unprivileged user namespaces: on Ubuntu >= 23.10 AppArmor forbids them
# unless kernel.apparmor_restrict_unprivileged_userns=0 (set here when running as root).
set -euo pipefail

restrict=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [ -r "$restrict" ] && [ "$(cat "$restrict")" != "0" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "allowing unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=0)"
    echo 0 >"$restrict"
  else
    echo "the local E2B-compatible host needs unprivileged user namespaces:" >&2
    echo "  sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" >&2
  fi
fi

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
[ -f /usr/share/nodejs/typescript/package.json ] || missing+=(node-typescript)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
{ command -v unshare && command -v setsid; } >/dev/null 2>&1 || missing+=(util-linux)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/python3 ] || missing+=(python3)  # the sandbox runtime (local/sandbox_runtime) is its venv
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (for the local E2B-compatible host)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "the local E2B-compatible host needs: ${missing[*]}" >&2
  echo "install them (e.g. sudo apt-get install ${missing[*]}) and run again" >&2
  exit 1
fi
