//! Reports: the JSON artifact, statistics over repetitions, the table, markdown and HTML.

pub mod schema;
