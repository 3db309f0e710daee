#!/usr/bin/env bash
# Copies the generated artifacts the charts embed, so the charts match their sources:
#   crds/manifests/*.yaml          → charts/infergate-crds/files/
#   envoy-bootstrap/bootstrap.yaml → charts/infergate/files/bootstrap.yaml
# Run after `make gen`; the chart test (`cargo test -p infergate-e2e --test charts`) fails until you do.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crds="$root/charts/infergate-crds/files"
rm -f "$crds"/*.yaml
cp "$root"/crds/manifests/*.yaml "$crds"/
cp "$root/envoy-bootstrap/bootstrap.yaml" "$root/charts/infergate/files/bootstrap.yaml"
echo "synced $(ls "$crds" | wc -l) CRDs and the Envoy bootstrap into charts/"
