#!/usr/bin/env bash
# Build and push the tools image `mlops guard serve` runs in (scripts/tools-image/Dockerfile),
# then print its reference by digest: the value of guard.image in manifests/gitops.yaml.
#
#   scripts/tools-image.sh [--no-push]      (make tools-image)
#
# REGISTRY (host:port, default 127.0.0.1:5000) and BASE_IMAGE (pinned by digest; default: the
# one `scripts/infra.sh up` made, in .infra/base-image) come from the environment, as for
# `mlops package`. TOOLS_REPOSITORY (default mlops/tools) names the image inside the registry.
#
# Hermetic for Python, like the serving image: the project's wheel and its dependencies' wheels
# (the `guard` extra, within constraints.txt) are made on the host and cached under
# $XDG_CACHE_HOME/mlops/tools-wheels, keyed by what decides them, so only the first build on a
# machine needs the package index; pip inside the build installs with --no-index. Only apt
# (for git) uses the network during the build.
#
# Exit codes: 0 built (and pushed), 2 bad settings, 3 Docker, the registry or the index
# unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {  # die CODE MESSAGE [HINT]
  printf 'tools-image: error: %s\n' "$2" >&2
  [ $# -gt 2 ] && printf '  hint: %s\n' "$3" >&2
  exit "$1"
}
log() { printf 'tools-image: %s\n' "$*" >&2; }

push=1
for arg in "$@"; do
  case "$arg" in
    --no-push) push=0 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die 2 "unknown argument: $arg" "usage: scripts/tools-image.sh [--no-push]" ;;
  esac
done

PY=${MLOPS_BIN:-.venv/bin}/python
REGISTRY=${REGISTRY:-127.0.0.1:5000}
TOOLS_REPOSITORY=${TOOLS_REPOSITORY:-mlops/tools}
BASE_IMAGE=${BASE_IMAGE:-$(cat .infra/base-image 2>/dev/null || true)}
# Allow-lists: these values reach docker's command line and an image reference.
[[ "$REGISTRY" =~ ^[A-Za-z0-9.-]+(:[0-9]{1,5})?$ ]] ||
  die 2 "REGISTRY must be host[:port], got '$REGISTRY'"
[[ "$TOOLS_REPOSITORY" =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] ||
  die 2 "TOOLS_REPOSITORY must be a lower-case repository path, got '$TOOLS_REPOSITORY'"
[ -n "$BASE_IMAGE" ] ||
  die 2 "no base image" "run scripts/infra.sh up, or set BASE_IMAGE=name@sha256:..."
[[ "$BASE_IMAGE" =~ ^[A-Za-z0-9./:_-]+@sha256:[0-9a-f]{64}$ ]] ||
  die 2 "BASE_IMAGE must be pinned by digest (name@sha256:<64 hex>), got '$BASE_IMAGE'"
[ -x "$PY" ] || die 2 "$PY is missing" "run make setup"
docker info >/dev/null 2>&1 || die 3 "the Docker engine does not answer" "run make infra-up"

# The wheels are built and fetched by this machine's Python for this machine: they fit the
# image when both are Python 3.11 on the same architecture, with a glibc no newer than the
# base's (bookworm: 2.36). `pip download --platform` cannot do it: the guard's dependencies
# include sdist-only packages (dvc needs antlr4-python3-runtime), which `pip wheel` builds.
arch=$(docker info --format '{{.Architecture}}')
host=$("$PY" -c 'import platform, sys; print(sys.version_info[:2] == (3, 11), platform.machine(), platform.libc_ver()[1])')
read -r py311 machine glibc <<<"$host"
[ "$py311" = True ] || die 2 "$PY is not Python 3.11, the base image's" "make setup with python3.11"
[ "$machine" = "$arch" ] || [ "$machine-$arch" = aarch64-arm64 ] || [ "$machine-$arch" = x86_64-amd64 ] ||
  die 2 "this machine is $machine but the engine builds $arch" "build on a $arch machine"
[ "$(printf '%s\n2.36\n' "$glibc" | sort -V | tail -1)" = 2.36 ] ||
  die 2 "this machine's glibc $glibc is newer than the base image's 2.36" "build on Debian bookworm"

key=$(cat pyproject.toml constraints.txt <(echo "$machine") | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/mlops/tools-wheels/$machine-py3.11-$key
# mlops itself is rebuilt every time (its code changes without changing the key); the
# dependencies' wheels are fetched once per key.
if [ ! -f "$cache/complete" ]; then
  log "fetching the guard's wheels into $cache (later builds re-use them)"
  rm -rf "$cache" && mkdir -p "$cache"
  "$PY" -m pip wheel --quiet --wheel-dir "$cache" -c constraints.txt '.[guard]' ||
    die 3 "fetching the guard's wheels failed" "the first build needs the package index"
  rm -f "$cache"/mlops_gitops-*.whl
  # The build backend of mlops (pyproject's build-system), so its wheel builds offline below.
  mapfile -t backend < <("$PY" -c 'import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")')
  "$PY" -m pip download --quiet --dest "$cache/build" --only-binary=:all: "${backend[@]}" ||
    die 3 "fetching the build backend failed" "the first build needs the package index"
  touch "$cache/complete"
fi

# The build context holds only what the image needs (no data, artifacts, .git or secrets).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx=$work/context
mkdir -p "$ctx/src/manifests" "$work/pkg"
mkdir "$ctx/wheels" && cp -p "$cache"/*.whl "$ctx/wheels/"
# Built from a copy (setuptools writes build/ and *.egg-info next to the sources), with the
# time of the last commit that changed those sources in the wheel: the same code gives the
# same bytes, so a build after commits elsewhere re-uses Docker's layer cache.
packaged=(pyproject.toml README.md pipelines)
cp -r "${packaged[@]}" "$work/pkg/"
epoch=$(git log -1 --format=%ct -- "${packaged[@]}" 2>/dev/null || true)
SOURCE_DATE_EPOCH=${epoch:-315532800} \
  "$PY" -m pip wheel --quiet --no-deps --no-index --find-links "$cache/build" \
  --wheel-dir "$ctx/wheels" "$work/pkg" ||
  die 3 "building the mlops wheel failed"
cp -r models pyproject.toml "$ctx/src/"
cp -r manifests/gitops.yaml manifests/environments manifests/templates manifests/crds \
  "$ctx/src/manifests/"
cp scripts/tools-image/Dockerfile "$ctx/"

# Tagged with the commit it was built from (a "-dirty" one holds uncommitted changes).
tag="$REGISTRY/$TOOLS_REPOSITORY:$(git describe --always --dirty --abbrev=12 2>/dev/null || echo latest)"
log "building $tag from $BASE_IMAGE"
start=$SECONDS
# Classic builder (no buildx here); host network for apt only, pip is offline.
DOCKER_BUILDKIT=0 docker build --quiet --network host --build-arg BASE_IMAGE="$BASE_IMAGE" \
  -t "$tag" "$ctx" >/dev/null || die 3 "docker build failed" "run it again without --quiet to see why"
log "built in $((SECONDS - start)) s"
if [ "$push" = 0 ]; then
  docker image inspect --format '{{.Id}}' "$tag"
  exit 0
fi
docker push --quiet "$tag" >/dev/null || die 3 "pushing $tag failed" "is the registry up? (make infra-up)"
ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" |
  grep -m1 "^$REGISTRY/$TOOLS_REPOSITORY@") || die 3 "the registry returned no digest for $tag"
log "pushed; set guard.image in manifests/gitops.yaml to:"
echo "$ref"
