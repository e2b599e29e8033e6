//! VM environments: a QEMU microVM, and Vagrant behind the `vm` feature.
