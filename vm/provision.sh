#!/bin/sh
# Provisioning for vm/Vagrantfile: installs the static isobench-server copied to /tmp by the
# file provisioner and runs it as a systemd service under an unprivileged system user.
set -eu
if ! id isobench >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin isobench
fi
install -m 0755 -o root -g root /tmp/isobench-server /usr/local/bin/isobench-server
install -m 0644 -o root -g root /tmp/isobench-server.service /etc/systemd/system/isobench-server.service
rm -f /tmp/isobench-server /tmp/isobench-server.service
systemctl daemon-reload
systemctl enable isobench-server.service
systemctl restart isobench-server.service
echo "isobench-server: $(systemctl is-active isobench-server.service)"
