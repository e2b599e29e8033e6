#!/usr/bin/env bash
# Boots the QEMU VM in the seed's configuration (ISOBENCH_VM_BOOT=legacy: q35, SeaBIOS,
# bzImage, gzip initramfs, virtio-pci) and in the fast one (microvm, PVH into the
# uncompressed kernel, plain initramfs, virtio-mmio), interleaved in one run, and prints the
# startup phase by phase beside the fast guest restored from a snapshot (the debug build
# suffices: QEMU, not isobench, is timed). Usage: vm/compare-boot.sh [boots per configuration, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --example vm_boot_compare -- "${1:-3}"
