#!/usr/bin/env bash
# Build the project's Dockerfile and run docs/pipelines.md's container recipes with it, against the local S3
# server and mock Zenodo, on a machine with no Docker engine and no registry.
#
# 1. a local Debian base (debootstrap, then buildah), made once and kept between runs;
# 2. the Dockerfile built with --build-arg BASE_IMAGE pointing at it (fails loudly if it no longer builds);
# 3. tests/container/check.py: --help, --version, and every docker run / apptainer / CI / Slurm recipe
#    of docs/pipelines.md run as written (same user, mounts and environment), the image left unchanged;
# 4. the test stage docker-compose.test.yml uses builds; tests/container/validate_compose.py checks the
#    compose file against the compose spec and runs its MinIO init script with a stand-in mc;
# 5. the image size.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
export STORAGE_DRIVER=vfs  # no overlay filesystem inside this sandbox
BASE=localhost/cartload-base:bookworm
IMAGE=localhost/cartload-uploader:check
PY=${PYTHON:-.venv/bin/python}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need buildah || ! need debootstrap; then
  echo "container check: installing buildah and debootstrap from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null
fi

if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  echo "container check: making the local base image $BASE (debootstrap; once per machine)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd bookworm \
    "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  # pip inside the build reaches the package index through this network's TLS proxy.
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$work/rootfs/etc/pip.conf"
  rm -rf "$work/rootfs/var/cache/apt/archives"/*.deb "$work/rootfs/var/lib/apt/lists"/*
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  container=$(buildah from scratch)
  buildah add "$container" "$work/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$container"
  buildah commit --quiet "$container" "$BASE" >/dev/null
  buildah rm "$container" >/dev/null
fi

version=$("$PY" -c 'import uploader; print(uploader.__version__)')
echo "container check: building the Dockerfile (version $version) on $BASE"
buildah bud --isolation chroot --quiet --layers=false --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "VERSION=$version" -t "$IMAGE" -f Dockerfile . >/dev/null

"$PY" tests/container/check.py "$IMAGE" "$version"

echo "container check: building the test stage that docker-compose.test.yml runs"
buildah bud --isolation chroot --quiet --layers=false --build-arg "BASE_IMAGE=$BASE" --target test \
  -t localhost/cartload-uploader:check-tests -f Dockerfile . >/dev/null
"$PY" tests/container/validate_compose.py "${XDG_CACHE_HOME:-$HOME/.cache}/cartload-uploader-check"

size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -1)
echo "container check: passed; image $IMAGE is $size; took $(( $(date +%s) - started )) s"
