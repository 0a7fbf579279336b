#!/usr/bin/env bash
# For .github/workflows/cluster-e2e.yml: the smoke Jobs passed, and the active Service of each
# environment answers for the release git says is active.
set -euo pipefail
cd "$(dirname "$0")/../.."
for env in staging production; do
  ns=mlops-$env
  kubectl -n "$ns" wait job -l app=digits-smoke --for=condition=complete --timeout=300s
  kubectl -n "$ns" port-forward svc/digits 18080:80 >/dev/null 2>&1 &
  pf=$!
  sleep 3
  curl -fsS http://127.0.0.1:18080/v1/models/digits
  echo
  kill "$pf"
done
