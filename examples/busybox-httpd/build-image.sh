#!/usr/bin/env bash
# Builds isobench-busybox-httpd:latest offline from Debian's busybox-static and this
# directory (FROM scratch: nothing is pulled).
#   examples/busybox-httpd/build-image.sh [TAG]
set -euo pipefail
tag=${1:-isobench-busybox-httpd:latest}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' \
  || { echo "build-image.sh: $busybox is not a static busybox (apt-get install busybox-static)" >&2; exit 1; }
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$here/Dockerfile" "$here/www" "$context/"
cp "$busybox" "$context/busybox"
docker build -q --target httpd -t "$tag" "$context" >/dev/null
docker image inspect --format "built $tag: {{.Id}} {{.Size}} bytes" "$tag"
