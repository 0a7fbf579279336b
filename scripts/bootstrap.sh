#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv, idempotently: .venv, or $MLOPS_VENV.
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

# The stamp holds a hash of what defines the environment: re-install only when it changes.
venv=${MLOPS_VENV:-.venv}
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
stamp=$venv/.mlops-env
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || { log "creating $venv"; python3 -m venv "$venv"; }
log "installing Python dependencies (pinned by constraints.txt; TensorFlow is ~1.5 GB the first time)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
if [ -n "${MLOPS_VENV:-}" ]; then
  # A shared environment (CI jobs, gitlab-ci-local): never point it at this one checkout.
  # `make` runs `python -m pipelines.cli` from the checkout, so its code is the one that runs.
  "$venv/bin/python" -m pip install --quiet -c constraints.txt ".[all]"
else
  "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[all]"
fi
echo "$want" > "$stamp"
log "ready: $("$venv/bin/mlops" --version)"
