//! Measurement protocols that drive an environment's instance with load and read it.

pub mod soak;
