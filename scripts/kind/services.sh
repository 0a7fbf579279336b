#!/usr/bin/env bash
# For .github/workflows/cluster-e2e.yml: a registry and the GitOps repository, reachable from
# the kind cluster by name on its network (kind-registry:5000, gitops-host:8080) and from this
# runner as localhost:5001 and .infra/gitops.git.
set -euo pipefail
cd "$(dirname "$0")/../.."
REGISTRY_IMAGE=registry:2@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373
# The serving image's own pinned base has Python, enough to serve git's dumb HTTP protocol.
PYTHON_IMAGE=$(.venv/bin/python -m pipelines.cli config | .venv/bin/python -c \
  'import json, sys; print(json.load(sys.stdin)["serving"]["base_image"])')

docker rm -f kind-registry gitops-host >/dev/null 2>&1 || true
docker run -d --restart=always --name kind-registry --network kind -p 127.0.0.1:5001:5000 \
  "$REGISTRY_IMAGE" >/dev/null

# The first mlops command that needs it creates and seeds the local GitOps repository.
.venv/bin/python -m pipelines.cli status --no-live >/dev/null
repo=.infra/gitops.git
cp "$repo/hooks/post-update.sample" "$repo/hooks/post-update"  # update-server-info per push
chmod +x "$repo/hooks/post-update"
git -C "$repo" update-server-info
docker run -d --name gitops-host --network kind -v "$PWD/.infra:/srv:ro" "$PYTHON_IMAGE" \
  python -m http.server 8080 --directory /srv >/dev/null
echo "services: kind-registry:5000 (localhost:5001 here), http://gitops-host:8080/gitops.git"
