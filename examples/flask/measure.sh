#!/usr/bin/env bash
# One command: build the seed's Flask image offline (unless it exists) and measure it natively
# (chrooted into the image's root filesystem), in a container and in a VM with isobench.
#   examples/flask/measure.sh [extra isobench run flags, e.g. --quick]
# Needs root (debootstrap, chroot), a Docker engine, QEMU and a Debian kernel for the VM.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${ISOBENCH_FLASK_TAG:-isobench-flask:latest}
if ! docker image inspect "$tag" >/dev/null 2>&1; then
  "$here/build-image.sh" "$tag"
fi
cd "$here/../.."
exec cargo run --release --features vm -- run --image "$tag" --port 5000 --health /health \
  --scenarios "$here/scenarios.toml" --env native,container,vm "$@"
