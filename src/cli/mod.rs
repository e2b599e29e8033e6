//! The `isobench` command line: `run`, `bench`, `compare`.

pub mod compare;
