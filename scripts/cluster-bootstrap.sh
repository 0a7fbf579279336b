#!/usr/bin/env bash
# Point a cluster's GitOps controller at the rendered manifests, for teams with a cluster.
#
#   scripts/cluster-bootstrap.sh argocd [--install]   AppProject + one Application per environment
#   scripts/cluster-bootstrap.sh flux [--install]     GitRepository + one Kustomization per environment
#
# Needs kubectl with a current context. --install first installs the controller from its
# pinned upstream release (Argo CD: ARGOCD_VERSION, default below; Flux: the `flux` CLI).
# Before running it: `mlops configure --repo-url URL ...` (the GitOps repository the cluster
# fetches; or MLOPS_GITOPS_REPO_URL and `mlops render`), and make the registry pullable from
# the cluster's nodes. Private repositories also need the controller's repository credentials.
set -euo pipefail
cd "$(dirname "$0")/.."

ARGOCD_VERSION=${ARGOCD_VERSION:-v2.13.3}
log() { printf 'cluster: %s\n' "$*"; }
die() { printf 'cluster: error: %s\n' "$1" >&2; [ $# -gt 1 ] && printf '  hint: %s\n' "$2" >&2; exit "${3:-2}"; }

controller=${1:-}
install=0
[ "${2:-}" = --install ] && install=1
case "$controller" in argocd|flux) ;; *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;; esac

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed" "https://kubernetes.io/docs/tasks/tools/"
kubectl version --request-timeout=10s >/dev/null 2>&1 \
  || die "no cluster answers the current context ($(kubectl config current-context 2>/dev/null || echo none))" \
         "kubectl config use-context <yours>" 3
if [ -z "${MLOPS_GITOPS_REPO_URL:-}" ] && grep -q "your-org/your-gitops-repo" manifests/gitops.yaml; then
  die "repo_url in manifests/gitops.yaml is still the template's placeholder" \
      "run: mlops configure --repo-url URL --registry REG --owners @org/team (or set MLOPS_GITOPS_REPO_URL and run mlops render)"
fi
envs=$(ls manifests/environments/*.yaml | xargs -n1 basename | sed 's/\.yaml$//')
log "context $(kubectl config current-context); environments: $(echo $envs)"

if [ "$controller" = argocd ]; then
  if [ "$install" = 1 ]; then
    log "installing Argo CD $ARGOCD_VERSION"
    kubectl create namespace argocd --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl apply -n argocd --server-side --force-conflicts \
      -f "https://raw.githubusercontent.com/argoproj/argo-cd/$ARGOCD_VERSION/manifests/install.yaml" >/dev/null
    kubectl -n argocd rollout status deployment/argocd-repo-server --timeout=300s
    kubectl -n argocd rollout status statefulset/argocd-application-controller --timeout=300s
  fi
  kubectl apply -f manifests/controllers/argocd/
  for env in $envs; do
    log "waiting for Application mlops-$env to be Synced and Healthy"
    kubectl -n argocd wait "application/mlops-$env" --timeout=600s \
      --for=jsonpath='{.status.sync.status}'=Synced
    kubectl -n argocd wait "application/mlops-$env" --timeout=600s \
      --for=jsonpath='{.status.health.status}'=Healthy
  done
else
  if [ "$install" = 1 ]; then
    command -v flux >/dev/null 2>&1 || die "the flux CLI is not installed" "https://fluxcd.io/flux/installation/"
    log "installing Flux"
    flux install
  fi
  kubectl apply -f manifests/controllers/flux/
  for env in $envs; do
    log "waiting for Kustomization mlops-$env to be Ready"
    kubectl -n flux-system wait "kustomization/mlops-$env" --for=condition=Ready --timeout=600s
  done
fi
log "done: \`mlops status\` now compares git with the cluster"
