//! Mock: deterministic readings for testing the report without Docker or QEMU.
