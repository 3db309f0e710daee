#!/usr/bin/env bash
# Builds one image per service binary from docker/<binary>.Dockerfile, tagged
# ${REGISTRY:-infergate}/<binary>:${TAG:-<workspace version>} (the charts' default repositories).
#
#   docker/build.sh                  # every binary whose crate exists
#   docker/build.sh xds-server epp   # just these
#   PUSH=1 REGISTRY=ghcr.io/me docker/build.sh
#
# Without a reachable Docker engine (`docker info` fails) it prints why and exits 0, so test runs
# and CI machines without Docker skip the images instead of failing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "no Docker engine: skipping image builds (docker info failed; set DOCKER_HOST or start Docker)"
  exit 0
fi

registry="${REGISTRY:-infergate}"
tag="${TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)}"
if [ "$#" -gt 0 ]; then
  binaries=("$@")
else
  binaries=(xds-server extproc epp ratelimit)
fi

export DOCKER_BUILDKIT=1
for name in "${binaries[@]}"; do
  dockerfile="docker/${name}.Dockerfile"
  if [ ! -f "$dockerfile" ]; then
    echo "no $dockerfile" >&2
    exit 1
  fi
  if [ ! -d "$name" ]; then
    echo "skipping $name: crate $name/ does not exist yet"
    continue
  fi
  image="${registry%/}/${name}:${tag}"
  echo "building $image"
  docker build -f "$dockerfile" -t "$image" .
  if [ -n "${PUSH:-}" ]; then
    docker push "$image"
  fi
done
