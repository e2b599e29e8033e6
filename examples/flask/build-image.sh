#!/usr/bin/env bash
# Builds the seed's Flask service as a Docker image without pulling anything: Debian's own
# python3-flask and gunicorn packages installed by debootstrap into a directory, the app
# copied in with a non-root user, and the directory imported as a single-layer image.
#
#   examples/flask/build-image.sh [TAG]        (default isobench-flask:latest; needs root)
#
# Environment: MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm).
# Prints the time each step took and the total, so the build cost is known.
set -euo pipefail

tag=${1:-isobench-flask:latest}
mirror=${MIRROR:-http://deb.debian.org/debian}
suite=${SUITE:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)

for tool in debootstrap docker tar; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "build-image.sh: debootstrap needs root" >&2; exit 1; }

root=$(mktemp -d "${TMPDIR:-/tmp}/isobench-flask-rootfs.XXXXXX")
cleanup() { rm -rf --one-file-system "$root"; }
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start=$(now)

step=$(now)
debootstrap --variant=minbase --include=python3-flask,gunicorn "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
echo "debootstrap: $(elapsed "$step") s"

step=$(now)
# What the service never reads at run time: apt's caches, documentation, man pages, locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/*
# The seed's Dockerfile runs the app as a non-root user `app`; same here, uid/gid 1000.
echo 'app:x:1000:1000:app:/app:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'app:x:1000:' >>"$root/etc/group"
echo 'app:*:19000:0:99999:7:::' >>"$root/etc/shadow"
install -d -o 1000 -g 1000 "$root/app"
install -m 0644 -o 1000 -g 1000 "$here/app.py" "$root/app/app.py"
# Mount points the service needs wherever it runs (a chroot has only what the image holds).
install -d -m 1777 "$root/tmp" "$root/dev/shm"
echo "trim and add the app: $(elapsed "$step") s"

step=$(now)
# gthread workers keep connections alive (sync workers close every one); two workers with
# four threads each. Worker heartbeat files go to /dev/shm, which is writable even when the
# root filesystem is read-only.
tar --numeric-owner -C "$root" -c . | docker import \
  -c 'USER app' \
  -c 'WORKDIR /app' \
  -c 'ENV PYTHONUNBUFFERED=1 PATH=/usr/local/bin:/usr/bin:/bin' \
  -c 'EXPOSE 5000' \
  -c 'CMD ["gunicorn", "--bind", "0.0.0.0:5000", "--workers", "2", "--threads", "4", "--worker-class", "gthread", "--worker-tmp-dir", "/dev/shm", "app:app"]' \
  - "$tag" >/dev/null
echo "docker import: $(elapsed "$step") s"

echo "built $tag in $(elapsed "$start") s: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$tag")"
