#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv, idempotently: .venv, or $MLOPS_VENV.
#
# MLOPS_INSTALL says what goes in: `all` (the default) is the project with every extra;
# `report` is only pyproject's `report` extra (what `mlops report` imports), not the project
# and none of its dependencies: make runs `python -m pipelines.cli` from the checkout. CI's
# report job, which holds `pull-requests: write`, installs that, and no TensorFlow, GX or DVC.
#
# On Debian/Ubuntu as root it first installs the OS packages the project needs when they are
# missing. Everything Python is pinned by constraints.txt, so a fresh clone gets the exact
# versions CI used; that matters beyond hygiene: data.dvc's hash depends on the Parquet writer.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bootstrap: %s\n' "$*"; }

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing OS packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    log "missing OS packages: ${need_apt[*]} (install them, or run as root on Debian)" >&2
    exit 2
  fi
fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  log "python3 is $(python3 -V 2>&1); this project needs 3.11 or newer" >&2
  exit 2
fi

# The stamp holds a hash of what defines the environment: re-install only when it changes. The
# stamp alone is not trusted: installed versions must be constraints.txt's pins, or the packages
# are re-installed. In CI the environment may come from a cache, so it is held to more: nothing
# unpinned installed, and every installed file matching its RECORD hash, with byte code dropped
# (no RECORD hashes it); if not, it is rebuilt from scratch, but only when it is this checkout's
# own .venv (GitLab's MLOPS_VENV, $CI_PROJECT_DIR/.venv, is that one). Any other MLOPS_VENV is
# someone's environment (gitlab-ci-local pointed at a developer's venv, say): it is never
# deleted; bootstrap stops and asks for a fresh path instead.
#
# The file check runs once per environment, not once per job: a marker outside the folder records
# which environment passed it, by its path, its stamp, and the stamp file itself (device, inode,
# change time). A cache restore or a rebuild writes the stamp anew, so what it brings is checked
# again; consecutive jobs sharing one environment (gitlab-ci-local) check versions only, and keep
# their byte code.
venv=${MLOPS_VENV:-.venv}
install=${MLOPS_INSTALL:-all}
if [ "$install" != all ] && [ "$install" != report ]; then
  printf 'bootstrap: MLOPS_INSTALL=%q is not all or report\n' "$install" >&2
  exit 2
fi
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
[ "$install" = all ] || want="$want $install"
stamp=$venv/.mlops-env
checks=()
[ -z "${CI:-}" ] || checks=(--strict)
own=""
[ "$(realpath -m "$venv")" != "$(pwd -P)/.venv" ] || own=1
marker_dir=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
marker="$marker_dir/mlops-venv-checked.$(realpath -m "$venv" | sha256sum | cut -c1-16)"
verified() {  # what the marker holds for the environment as it is now
  printf '%s %s\n' "$want" "$(python3 -I -c 'import os, sys; s = os.stat(sys.argv[1])
print(s.st_dev, s.st_ino, s.st_ctime_ns)' "$stamp" 2>/dev/null)"
}
if [ -z "$own" ] && [ -d "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
  log "MLOPS_VENV=$venv is a folder with files but not a virtualenv: nothing is installed there;" \
    "point MLOPS_VENV at a fresh path (bootstrap creates it) or at a virtualenv" >&2
  exit 2
fi
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  files=()
  if [ -n "${CI:-}" ] && [ "$(cat "$marker" 2>/dev/null)" != "$(verified)" ]; then
    files=(--files)
  fi
  if python3 -I scripts/verify-venv.py "${checks[@]}" "${files[@]}" "$venv" constraints.txt; then
    if [ ${#files[@]} -gt 0 ]; then
      find "$venv/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
      verified > "$marker"
      log "$venv verified: pinned versions, nothing unpinned, every file matches its RECORD"
    elif [ -n "${CI:-}" ]; then
      log "$venv already verified file by file (same path and stamp): pinned versions checked"
    fi
    exit 0
  fi
  if [ -n "${CI:-}" ] && [ -z "$own" ]; then
    log "MLOPS_VENV=$venv is not what constraints.txt pins (see above). It is not this" \
      "checkout's .venv, so it is left as it is, not rebuilt: point MLOPS_VENV at a fresh" \
      "path (bootstrap builds the environment there), or repair this one outside CI" \
      "(\`make setup\` without CI set re-installs the pinned versions in place)" >&2
    exit 2
  fi
  if [ -n "${CI:-}" ]; then
    log "$venv is not what constraints.txt pins (see above): rebuilding it"
    rm -rf "$venv"
  else
    log "$venv is not what constraints.txt pins (see above): re-installing the pinned versions"
  fi
fi
[ -x "$venv/bin/python" ] || { log "creating $venv"; python3 -m venv "$venv"; }
"$venv/bin/python" -m pip install --quiet --upgrade pip
if [ "$install" = report ]; then
  log "installing what \`mlops report\` imports (pyproject's report extra, pinned)"
  reqs=$(python3 -I -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["report"]))')
  mapfile -t reqs <<< "$reqs"
  "$venv/bin/python" -m pip install --quiet -c constraints.txt "${reqs[@]}"
else
  log "installing Python dependencies (pinned by constraints.txt; TensorFlow is ~1.7 GB the" \
    "first time)"
  if [ -n "${MLOPS_VENV:-}" ]; then
    # A shared environment (CI jobs, gitlab-ci-local): never point it at this one checkout.
    # `make` runs `python -m pipelines.cli` from the checkout, so its code is the one that runs.
    "$venv/bin/python" -m pip install --quiet -c constraints.txt ".[all]"
  else
    "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[all]"
  fi
fi
"$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check >&2; exit 2; }
python3 -I scripts/verify-venv.py "${checks[@]}" "$venv" constraints.txt || {
  log "the fresh environment does not match constraints.txt: pin what is listed above" >&2
  exit 2
}
echo "$want" > "$stamp"
[ -z "${CI:-}" ] || verified > "$marker"  # just built and checked: no file check needed
log "ready: $("$venv/bin/python" -m pipelines.cli --version) ($install)"
