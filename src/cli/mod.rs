//! The `isobench` command line: `run`, `bench`, `compare`.
