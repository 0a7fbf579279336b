#!/usr/bin/env bash
# Local infrastructure for packaging and verifying images: a Docker engine, an OCI registry and
# a pinned Python 3.11 base image; and PostgreSQL for `mlops tune` studies shared by many
# workers. Idempotent: `up` twice does the work once.
#
#   scripts/infra.sh up [--if-possible]   start what is missing (root on Debian installs it)
#   scripts/infra.sh status               say what is running and where
#   scripts/infra.sh monitoring           install Prometheus and Alertmanager (promtool, amtool)
#   scripts/infra.sh postgres             start PostgreSQL only, and print its DSN
#   scripts/infra.sh down                 stop what `up` started (images and data are kept)
#
# Teams with Docker Desktop or a CI runner keep their own engine and registry: set DOCKER_HOST,
# REGISTRY (host:port) and BASE_IMAGE (pinned by digest, e.g. python:3.11-slim@sha256:...) and
# `up` only checks them. State lives in .infra/ (git-ignored).
#
# --if-possible: when something cannot be started here (not root, not Debian), say so and exit
# 0, so `make test` still runs the tests that need nothing (the others skip with the reason).
# CI sets MLOPS_REQUIRE_INFRA=1, which turns that back into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.infra
REGISTRY=${REGISTRY:-127.0.0.1:5000}
BASE_REPO=mlops/python-base
BASE_TAG=3.11-bookworm
MIRROR=${MLOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PG_PORT=${MLOPS_PG_PORT:-55432}
PG=$STATE/postgres
if_possible=0

log() { printf 'infra: %s\n' "$*"; }
die() {
  printf 'infra: error: %s\n' "$1" >&2
  [ $# -gt 1 ] && printf '  hint: %s\n' "$2" >&2
  if [ "$if_possible" = 1 ] && [ "${MLOPS_REQUIRE_INFRA:-0}" != 1 ]; then
    log "continuing without it (--if-possible); tests that need it will skip and say why"
    exit 0
  fi
  exit 3
}

# Root, or passwordless sudo (GitHub's hosted runners): what installing and debootstrap need.
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=sudo
fi
is_root_debian() { { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; } && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  is_root_debian || die "missing packages: ${missing[*]}" \
    "install them, or run as root on Debian/Ubuntu so this script can"
  log "installing ${missing[*]} (apt)"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

engine_up() { docker info >/dev/null 2>&1; }

# promtool and amtool (the alert-rule tests), from Debian's packages. Nothing runs: the tests
# start the binaries themselves (there is no systemd here). Without root, missing tools are
# reported, not fatal: those tests skip, or fail under MLOPS_REQUIRE_INFRA=1.
monitoring_tools() {
  if ! { command -v promtool && command -v amtool; } >/dev/null 2>&1; then
    if ! is_root_debian; then
      log "prometheus, alertmanager: not installed, and installing needs root on Debian"
      return 0
    fi
    apt_install prometheus prometheus-alertmanager
  fi
  log "monitoring: $(promtool --version 2>&1 | head -1)"
}

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

start_engine() {
  if engine_up; then log "docker engine: reachable ($(docker version -f '{{.Server.Version}}'))"; return; fi
  [ -n "${DOCKER_HOST:-}" ] && die "DOCKER_HOST=$DOCKER_HOST does not answer" \
    "start that engine, or unset DOCKER_HOST to let this script start a local one"
  [ "$(uname -s)" = Linux ] || die "no docker engine is reachable" "start Docker Desktop"
  apt_install docker.io
  command -v docker >/dev/null 2>&1 || die "docker CLI missing after install"
  mkdir -p "$STATE"
  if [ -d /run/systemd/system ] && $SUDO systemctl start docker >/dev/null 2>&1 && wait_for 30 engine_up; then
    log "docker engine: started with systemd"; return
  fi
  # No systemd (containers, CI sandboxes): run dockerd by hand. Without iptables or a bridge it
  # only offers the host network, which is all packaging and verification need.
  local flags=(--iptables=false --ip-masq=false --bridge=none --pidfile "$PWD/$STATE/dockerd.pid")
  for driver in "" vfs; do
    local extra=()
    [ -n "$driver" ] && extra=(--storage-driver="$driver")
    log "docker engine: starting dockerd ${extra[*]:-(default storage driver)}"
    $SUDO nohup dockerd "${flags[@]}" "${extra[@]}" >"$STATE/dockerd.log" 2>&1 &
    if wait_for 30 engine_up; then
      log "docker engine: up ($(docker info -f '{{.Driver}}') storage; log $STATE/dockerd.log)"
      return
    fi
    [ -f "$STATE/dockerd.pid" ] && $SUDO kill "$(cat "$STATE/dockerd.pid")" 2>/dev/null || true
    sleep 1
  done
  die "dockerd did not start; see $STATE/dockerd.log" "start a docker engine and re-run"
}

registry_up() { curl -fs -o /dev/null "http://$REGISTRY/v2/"; }

start_registry() {
  if registry_up; then log "registry: $REGISTRY answers"; return; fi
  case "$REGISTRY" in
    127.0.0.1:*|localhost:*) ;;
    *) die "registry $REGISTRY does not answer" "check REGISTRY, or log in to it" ;;
  esac
  apt_install docker-registry curl
  mkdir -p "$STATE/registry/data"
  cat >"$STATE/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $PWD/$STATE/registry/data}
  delete: {enabled: true}
http: {addr: "$REGISTRY"}
EOF
  nohup docker-registry serve "$STATE/registry/config.yml" >"$STATE/registry/log" 2>&1 &
  echo $! >"$STATE/registry.pid"
  wait_for 15 registry_up || die "the registry did not start; see $STATE/registry/log"
  log "registry: started on $REGISTRY (data in $STATE/registry/data)"
}

manifest_digest() {  # manifest_digest REPO REFERENCE -> sha256:..., or nothing when absent
  # A fresh registry answers 404 (curl exits 22); under pipefail that must mean "absent", not
  # abort the script.
  local headers
  headers=$(curl -fsS -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null) || return 0
  printf '%s\n' "$headers" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then
    case "$BASE_IMAGE" in *@sha256:*) log "base image: $BASE_IMAGE (from BASE_IMAGE)"; return ;; esac
    die "BASE_IMAGE=$BASE_IMAGE is not pinned by digest" "use NAME@sha256:<digest>"
  fi
  local recorded=""
  [ -f "$STATE/base-image" ] && recorded=$(cat "$STATE/base-image")
  if [ -n "$recorded" ] && [ "$(manifest_digest "$BASE_REPO" "${recorded##*@}")" = "${recorded##*@}" ]; then
    log "base image: $recorded"; return
  fi
  # Another clone on this machine built it already: the registry's tag is as good.
  local existing; existing=$(manifest_digest "$BASE_REPO" "$BASE_TAG")
  if [ -n "$existing" ]; then
    mkdir -p "$STATE"; echo "$REGISTRY/$BASE_REPO@$existing" >"$STATE/base-image"
    log "base image: $(cat "$STATE/base-image") (already in the registry)"; return
  fi
  # No public registry can be pulled from here, so the base is made from Debian's own packages:
  # the same Python minor version (3.11) as python:3.11-slim.
  apt_install debootstrap
  local root="$STATE/base/rootfs"
  $SUDO rm -rf "$STATE/base"; mkdir -p "$root"
  log "base image: debootstrap bookworm + python3 from $MIRROR (about a minute, once)"
  $SUDO debootstrap --variant=minbase --include=python3-minimal,python3-venv bookworm "$root" "$MIRROR" \
    >"$STATE/base/debootstrap.log" 2>&1 || die "debootstrap failed; see $STATE/base/debootstrap.log"
  # What a runtime image never reads: package caches and lists, docs, man pages, locales.
  $SUDO rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
    "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale "$root"/var/log/*
  local tag="$REGISTRY/$BASE_REPO:$BASE_TAG"
  $SUDO tar -C "$root" -c . | docker import -c 'CMD ["python3"]' - "$tag" >/dev/null
  $SUDO rm -rf "$STATE/base"
  docker push -q "$tag" >/dev/null || die "pushing $tag to $REGISTRY failed"
  local digest; digest=$(manifest_digest "$BASE_REPO" "$BASE_TAG")
  [ -n "$digest" ] || die "the registry does not report a digest for $tag"
  echo "$REGISTRY/$BASE_REPO@$digest" >"$STATE/base-image"
  docker pull -q "$(cat "$STATE/base-image")" >/dev/null
  log "base image: $(cat "$STATE/base-image") ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# PostgreSQL from Debian's package, run by hand (no systemd here) as a non-root user: the
# package's `postgres` user when we are root, else ourselves. The cluster listens on 127.0.0.1
# only, with a password (scram-sha-256) that is generated once and kept in .infra/postgres/
# (mode 600, git-ignored), as is the DSN `mlops tune --storage` (or MLOPS_TUNE_STORAGE) takes.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_as() {  # pg_as COMMAND...: run as the cluster's owner
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
# The cluster's superuser: peer authentication on the private socket maps the OS user to the
# role of the same name, so it is `postgres` when we run as that user (as root), else ourselves.
pg_super() { if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi; }
pg_up() { [ -n "$(pg_bin)" ] && "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {  # start_postgres [show]: `show` prints the DSN itself (infra.sh postgres)
  if pg_up && [ -f "$PG/dsn" ]; then log "postgres: up on 127.0.0.1:$PG_PORT"; pg_dsn "${1:-}"; return; fi
  [ -n "$(pg_bin)" ] || apt_install postgresql
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] || die "postgresql installed but no /usr/lib/postgresql/*/bin"
  pg_up && die "127.0.0.1:$PG_PORT answers, but it is not this repository's cluster" \
    "set MLOPS_PG_PORT to a free port"
  mkdir -p "$PG"
  chmod 700 "$PG"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG"
  if [ ! -f "$PG/data/PG_VERSION" ]; then
    local pwfile="$PG/password"
    pg_as sh -c "umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >'$pwfile'"
    log "postgres: initdb in $PG/data"
    pg_as "$bin/initdb" -D "$PWD/$PG/data" -U "$(pg_super)" --auth-local=peer \
      --auth-host=scram-sha-256 \
      >"$PG/initdb.log" 2>&1 || die "initdb failed; see $PG/initdb.log"
  fi
  pg_as "$bin/pg_ctl" -D "$PWD/$PG/data" -l "$PWD/$PG/log" -w -t 60 \
    -o "-p $PG_PORT -k $PWD/$PG -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "postgres did not start; see $PG/log"
  # The tuning user and database, once; psql over the private Unix socket as the superuser.
  local psql=("$bin/psql" -h "$PWD/$PG" -p "$PG_PORT" -U "$(pg_super)" -d postgres -X -q
    -v ON_ERROR_STOP=1)
  if [ "$(pg_as "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname='mlops'")" != 1 ]; then
    # On stdin, not in psql's arguments: `ps` would show the password there.
    printf "CREATE ROLE mlops LOGIN PASSWORD '%s';\nCREATE DATABASE mlops OWNER mlops;\n" \
      "$(cat "$PG/password")" | pg_as "${psql[@]}" >/dev/null
  fi
  pg_as sh -c "umask 077; printf 'postgresql+psycopg://mlops:%s@127.0.0.1:%s/mlops\n' \
    \"\$(cat '$PG/password')\" '$PG_PORT' >'$PG/dsn'"
  log "postgres: started on 127.0.0.1:$PG_PORT (data in $PG/data, log $PG/log)"
  pg_dsn "${1:-}"
}

# The DSN holds the password. `infra.sh postgres` prints it on stdout (a script captures it);
# `infra.sh up`, which CI runs into its log, shows it masked. The file is its owner's only.
pg_dsn() {
  if [ "${1:-}" = show ]; then
    log "postgres DSN (also in $PG/dsn; give it to mlops tune as MLOPS_TUNE_STORAGE or --storage):"
    cat "$PG/dsn"
  else
    log "postgres DSN in $PG/dsn: $(sed 's#://\([^:/@]*\):[^@]*@#://\1:***@#' "$PG/dsn")"
  fi
}

stop_postgres() {
  [ -f "$PG/data/postmaster.pid" ] || return 0
  pg_as "$(pg_bin)/pg_ctl" -D "$PWD/$PG/data" -m fast -w stop >/dev/null 2>&1 && log "postgres: stopped"
  return 0
}

status() {
  local rc=0
  if engine_up; then log "docker engine: up ($(docker version -f '{{.Server.Version}}'), ${DOCKER_HOST:-local socket})"
  else log "docker engine: not reachable"; rc=3; fi
  if registry_up; then log "registry: $REGISTRY answers"; else log "registry: $REGISTRY not answering"; rc=3; fi
  if [ -n "${BASE_IMAGE:-}" ]; then log "base image: $BASE_IMAGE (from BASE_IMAGE)"
  elif [ -f "$STATE/base-image" ]; then log "base image: $(cat "$STATE/base-image")"
  else log "base image: none yet (run: scripts/infra.sh up)"; rc=3; fi
  if pg_up; then log "postgres: up on 127.0.0.1:$PG_PORT (DSN in $PG/dsn)"
  else log "postgres: not answering on 127.0.0.1:$PG_PORT (run: scripts/infra.sh postgres)"; rc=3; fi
  return $rc
}

stop_pid() {  # stop_pid FILE NAME
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if $SUDO kill "$pid" 2>/dev/null; then
    wait_for 20 bash -c "! $SUDO kill -0 $pid" || $SUDO kill -9 "$pid" 2>/dev/null || true
    log "$2: stopped"
  fi
  rm -f "$1"
}

cmd=${1:-}
[ "${2:-}" = --if-possible ] && if_possible=1
case "$cmd" in
  up)
    command -v curl >/dev/null 2>&1 || apt_install curl
    monitoring_tools; start_engine; start_registry; base_image; start_postgres
    log "ready: REGISTRY=$REGISTRY BASE_IMAGE=${BASE_IMAGE:-$(cat "$STATE/base-image")}" ;;
  status) status ;;
  apt) shift; apt_install "$@" ;;  # used by `make bench` for wrk
  # Debian's packages; there is no systemd here, so tests start the binaries themselves.
  monitoring) apt_install prometheus prometheus-alertmanager; monitoring_tools ;;
  postgres) start_postgres show ;;
  down) stop_postgres; stop_pid "$STATE/registry.pid" registry; stop_pid "$STATE/dockerd.pid" "docker engine" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 2 ;;
esac
